import factory

from agencies.models import Agency, AgencyStatus, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        password = kwargs.pop("password", PASSWORD)
        return model_class.objects.create_user(*args, password=password, **kwargs)


class StaffUserFactory(UserFactory):
    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency

    user = factory.SubFactory(UserFactory)
    business_name = factory.Sequence(lambda n: f"Agency {n}")
    contact_name = "Pat Doe"
    status = AgencyStatus.ACTIVE
