"""The mapping engine on its own: pure Python, no database."""

from leads.standard import LEAD_FIELDS
from portals.mapping import apply_mapping, split_full_name, validate_spec


def run(spec, payload):
    assert validate_spec(spec, targets=LEAD_FIELDS) == []
    return apply_mapping(spec, payload, targets=LEAD_FIELDS)


def test_nested_dotted_path_reads_inside_objects_and_list_indexes():
    spec = {"fields": {"email": "contact.emails.1", "zipcode": {"path": "location.address.zip"}}}

    result = run(spec, {"contact": {"emails": ["a@x.com", "b@x.com"]}, "location": {"address": {"zip": "10001"}}})

    assert result.values == {"email": "b@x.com", "zipcode": "10001"}
    assert result.details == {"contact": {"emails": ["a@x.com"]}}


def test_pick_takes_the_value_of_the_entry_whose_key_matches():
    spec = {"fields": {"zipcode": {"path": "answers", "pick": {"key": "id", "equals": "zip", "value": "value"}}}}
    payload = {"answers": [{"id": "age", "value": "41"}, {"id": "zip", "value": "10001"}]}

    result = run(spec, payload)

    assert result.values == {"zipcode": "10001"}
    assert result.details == {"answers": [{"id": "age", "value": "41"}]}


def test_pick_value_path_defaults_to_value_and_can_be_nested():
    spec = {
        "fields": {
            "phone": {"path": "q", "pick": {"key": "name", "equals": "phone"}},
            "city": {"path": "q", "pick": {"key": "name", "equals": "city", "value": "answer.text"}},
        }
    }

    result = run(spec, {"q": [{"name": "phone", "value": "2125550100"}, {"name": "city", "answer": {"text": "NYC"}}]})

    assert result.values == {"phone": "2125550100", "city": "NYC"}


def test_single_element_arrays_are_unwrapped_on_the_way_and_at_the_end():
    spec = {"fields": {"email": "contact.email", "zipcode": "zip"}}

    result = run(spec, {"contact": [{"email": ["ada@example.com"]}], "zip": ["10001"]})

    assert result.values == {"email": "ada@example.com", "zipcode": "10001"}
    assert result.details == {}


def test_a_list_of_several_values_for_one_field_is_an_error():
    result = run({"fields": {"email": "emails"}}, {"emails": ["a@x.com", "b@x.com"]})

    assert "email" in result.errors


def test_const_sets_a_value_regardless_of_the_payload():
    result = run({"fields": {"lead_type": {"const": "auto"}, "is_test": {"const": True}}}, {"x": 1})

    assert result.values == {"lead_type": "auto", "is_test": True}
    assert result.details == {"x": 1}


def test_full_name_is_split_into_first_and_last_name():
    spec = {
        "fields": {
            "first_name": {"path": "name", "split_name": "first"},
            "last_name": {"path": "name", "split_name": "last"},
        }
    }

    assert run(spec, {"name": "  Ann   Marie Lee "}).values == {"first_name": "Ann", "last_name": "Marie Lee"}
    assert run(spec, {"name": "Lee, Ann"}).values == {"first_name": "Ann", "last_name": "Lee"}
    assert split_full_name("Cher") == ("Cher", "")


def test_transforms_trim_lower_upper_digits_run_in_order():
    spec = {
        "fields": {
            "email": {"path": "mail", "transforms": ["trim", "lower"]},
            "phone": {"path": "tel", "transforms": ["digits"]},
            "state": {"path": "st", "transforms": ["trim", "upper"]},
            "zipcode": {"path": "zip", "transforms": ["digits"]},
        }
    }

    result = run(spec, {"mail": "  Ada@Example.COM ", "tel": "(212) 555-0100", "st": " ny ", "zip": 10001})

    assert result.values == {"email": "ada@example.com", "phone": "2125550100", "state": "NY", "zipcode": "10001"}


def test_default_applies_when_the_path_finds_nothing():
    result = run({"fields": {"lead_type": {"path": "kind", "default": "home"}}}, {})

    assert result.values == {"lead_type": "home"}


def test_unmapped_data_is_kept_in_details_unless_disabled():
    payload = {"email": "a@x.com", "utm": {"source": "fb"}, "score": 7}

    kept = run({"fields": {"email": "email"}}, payload)
    dropped = run({"fields": {"email": "email"}, "keep_unmapped": False}, payload)

    assert kept.details == {"utm": {"source": "fb"}, "score": 7}
    assert dropped.details == {}
    assert payload == {"email": "a@x.com", "utm": {"source": "fb"}, "score": 7}  # input untouched


def test_no_mapping_takes_standard_field_names_from_a_flat_object():
    result = apply_mapping({}, {"email": "a@x.com", "zipcode": "10001", "favourite": "blue"}, targets=LEAD_FIELDS)

    assert result.values == {"email": "a@x.com", "zipcode": "10001"}
    assert result.details == {"favourite": "blue"}


def test_validation_lists_every_problem_of_a_bad_spec():
    spec = {
        "fields": {
            "shoe_size": "a.b",
            "email": {"path": "a..b", "transforms": ["camel"]},
            "phone": {"const": 1, "path": "x"},
            "zipcode": {"path": "answers", "pick": {"equals": "zip"}},
            "first_name": {"path": "name", "split_name": "middle"},
            "city": 42,
        },
        "extra": True,
    }

    problems = validate_spec(spec, targets=LEAD_FIELDS)

    assert len(problems) >= 7
    joined = "\n".join(problems)
    for fragment in ("extra", "shoe_size", "a..b", "camel", "exactly one", "pick.key", "split_name", "fields.city"):
        assert fragment in joined


def test_validation_refuses_non_objects():
    assert validate_spec([1], targets=LEAD_FIELDS) == ["The mapping must be an object."]
    assert validate_spec({"fields": []}, targets=LEAD_FIELDS)
    assert validate_spec(None, targets=LEAD_FIELDS) == []
