"""Push delivery backends. FCM (firebase-admin) when FCM_CREDENTIALS_FILE names a
service-account file; otherwise a logging backend that records what would be sent."""

import logging
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import firebase_admin
from django.conf import settings
from firebase_admin import credentials, exceptions, messaging

logger = logging.getLogger(__name__)

FCM_BATCH_SIZE = 500  # FCM's limit of tokens per multicast


@dataclass
class PushOutcome:
    delivered: int = 0
    invalid_tokens: list[str] = field(default_factory=list)
    transient_error: str = ""
    rejected_error: str = ""  # FCM refused the message itself: sending it again cannot help


@dataclass(frozen=True)
class PushMessage:
    title: str
    body: str
    data: dict[str, str]


class LoggingBackend:
    """Development and tests without credentials: nothing leaves the machine."""

    def send(self, tokens: list[str], message: PushMessage) -> PushOutcome:
        logger.info(
            "push (logging backend) to %d device(s): %s | %s | %s",
            len(tokens),
            message.title,
            message.body,
            message.data,
        )
        return PushOutcome(delivered=len(tokens))


class FCMBackend:
    """Firebase Cloud Messaging through firebase-admin's multicast API."""

    def __init__(self, credentials_file: str):
        try:
            self.app = firebase_admin.get_app("leadmarket")
        except ValueError:
            self.app = firebase_admin.initialize_app(credentials.Certificate(credentials_file), name="leadmarket")

    @staticmethod
    def _message(tokens: list[str], message: PushMessage):
        return messaging.MulticastMessage(
            tokens=tokens,
            data=message.data,
            notification=messaging.Notification(title=message.title, body=message.body),
            android=messaging.AndroidConfig(
                priority="high", notification=messaging.AndroidNotification(channel_id="leads", sound="default")
            ),
            apns=messaging.APNSConfig(
                headers={"apns-priority": "10"}, payload=messaging.APNSPayload(aps=messaging.Aps(sound="default"))
            ),
            webpush=messaging.WebpushConfig(headers={"Urgency": "high"}),
        )

    def send(self, tokens: list[str], message: PushMessage) -> PushOutcome:
        outcome = PushOutcome()
        for start in range(0, len(tokens), FCM_BATCH_SIZE):
            batch = tokens[start : start + FCM_BATCH_SIZE]
            with warnings.catch_warnings():
                # The app registers FCM registration tokens (what `getToken()` returns);
                # firebase-admin now also targets installation ids (`fids`) and flags
                # `tokens` as deprecated, but registration tokens remain what FCM delivers to.
                warnings.simplefilter("ignore", DeprecationWarning)
                multicast = self._message(batch, message)
            response = messaging.send_each_for_multicast(multicast, app=self.app)
            for token, result in zip(batch, response.responses, strict=True):
                if result.success:
                    outcome.delivered += 1
                elif _token_is_dead(result.exception):
                    outcome.invalid_tokens.append(token)
                elif isinstance(result.exception, exceptions.InvalidArgumentError):
                    outcome.rejected_error = f"{type(result.exception).__name__}: {result.exception}"[:500]
                else:
                    outcome.transient_error = f"{type(result.exception).__name__}: {result.exception}"[:500]
        return outcome


def _token_is_dead(exception) -> bool:
    """FCM's answers that mean this token will never work again. INVALID_ARGUMENT is also
    what a bad message gets, so it counts only when FCM names the registration token."""
    if isinstance(exception, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return True
    return isinstance(exception, exceptions.InvalidArgumentError) and "registration token" in str(exception).lower()


@lru_cache(maxsize=1)
def _backend_for(credentials_file: str):
    return FCMBackend(credentials_file) if credentials_file else LoggingBackend()


def get_backend():
    return _backend_for(settings.FCM_CREDENTIALS_FILE)
