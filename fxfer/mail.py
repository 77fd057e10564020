"""The mail backend (EMAIL_BACKEND): django-ses's SESBackend on the process's one SES client.

Django builds a new backend for every mail it sends, and django-ses's backend opens a new boto3 session and
client in each (~60 ms of CPU and several MB per mail); it has no option to reuse one. This backend takes the
client from fxfer.aws instead: one per region and endpoint per process. Sending is otherwise django-ses's own
(raw MIME, the configuration set header, its signals). Its automatic throttling is off in the settings
(AWS_SES_AUTO_THROTTLE = None): it sleeps inside the request, and SES's own rate limit is met by the mail
outbox's retries.
"""

from django_ses import SESBackend as DjangoSESBackend

from fxfer import aws


class SESBackend(DjangoSESBackend):
    def open(self) -> bool:
        """Take the process's SES client (True when this backend had none). A backend given credentials, a
        profile or a botocore config of its own opens its own client, as django-ses does."""
        if self.connection:
            return False
        if self._session_profile or self._access_key_id or self._config:
            super().open()
            return bool(self.connection)
        try:
            self.connection = aws.client(
                "sesv2" if self._use_ses_v2 else "ses", region=self._region_name, endpoint=self._endpoint_url
            )
        except Exception:
            if not self.fail_silently:
                raise
            return False
        return True
