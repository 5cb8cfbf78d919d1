"""MMS media is fetched only from Twilio's media hosts (``TWILIO_MEDIA_HOSTS``) over https, and the account's
credentials go to the media URL's own host only; any other URL is not requested at all and the SMS is filed with a
note, the URL kept on the raw item. The HTTP layer is mocked (``requests.get``): no test reaches the network."""

from urllib.parse import urlencode

import pytest
import requests

from inbox.ingest import sms as sms_ingest
from inbox.ingest.sms import MediaRefused, download_media, is_media_host
from inbox.models import RawInbound
from tests.factories import PatientContactMethodFactory, SendingLineFactory
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    TWILIO_TOKEN,
    eager_celery,
    hook_secrets,
    twilio_signature,
)

MARIA = "+15550102030"
LINE = "+15550100000"
SMS_URL = "/hooks/sms/twilio/"


class FakeResponse:
    def __init__(self, status=200, body=b"", headers=None):
        self.status_code, self.body, self.headers = (
            status,
            body,
            requests.structures.CaseInsensitiveDict(headers),
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code}")

    def iter_content(self, size):
        yield self.body


@pytest.fixture
def http(monkeypatch):
    """``requests.get`` answering from ``http.routes`` (url → FakeResponse); every call is recorded."""

    class Http:
        routes: dict = {}
        calls: list = []

    def fake_get(url, **kwargs):
        Http.calls.append((url, kwargs))
        if url not in Http.routes:
            raise AssertionError(f"unexpected request to {url!r}")
        return Http.routes[url]

    monkeypatch.setattr(requests, "get", fake_get)
    Http.routes, Http.calls = {}, []
    return Http


@pytest.fixture(autouse=True)
def media_hosts(settings):
    settings.TWILIO_MEDIA_HOSTS = ["api.twilio.com", "*.twiliocdn.com"]


def test_the_default_media_hosts_are_twilios(settings):
    from inbox_project import settings as project_settings

    assert project_settings.TWILIO_MEDIA_HOSTS == ["api.twilio.com", "*.twiliocdn.com"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.twilio.com", True),
        ("API.Twilio.com.", True),
        ("media.twiliocdn.com", True),
        ("s3.media.twiliocdn.com", True),
        ("twiliocdn.com", False),
        ("eviltwiliocdn.com", False),
        ("media.twiliocdn.com.evil.example", False),
        ("api.twilio.com.evil.example", False),
        ("evil.example", False),
        ("169.254.169.254", False),
        ("", False),
    ],
)
def test_only_configured_twilio_hosts_are_media_hosts(host, allowed):
    assert is_media_host(host) is allowed


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/media/ME1",
        "http://api.twilio.com/2010-04-01/Media/ME1",
        "https://api.twilio.com:8443/2010-04-01/Media/ME1",
        "https://169.254.169.254/latest/meta-data",
        "https://api.twilio.com/Media/ME\x001",
        "https://api.twilio.com/Media/ME 1",
        "ftp://api.twilio.com/ME1",
        "https://[::1/",
    ],
)
def test_any_other_url_is_refused_without_a_request(http, url):
    with pytest.raises(MediaRefused):
        download_media(url, max_bytes=1000)
    assert http.calls == []


def test_a_twilio_media_url_is_fetched_with_the_account_credentials(http):
    url = "https://api.twilio.com/2010-04-01/Accounts/ACabc/Messages/MM1/Media/ME1"
    http.routes[url] = FakeResponse(body=b"gif", headers={"Content-Type": "image/gif"})
    assert download_media(url, max_bytes=1000) == (b"gif", "image/gif")
    ((called, kwargs),) = http.calls
    assert called == url and kwargs["auth"] == ("ACtest", TWILIO_TOKEN) and kwargs["allow_redirects"] is False


def test_a_redirect_to_the_cdn_is_followed_without_the_credentials(http):
    url = "https://api.twilio.com/2010-04-01/Accounts/ACabc/Messages/MM1/Media/ME1"
    cdn = "https://media.twiliocdn.com/ACabc/abc123?Expires=1"
    http.routes[url] = FakeResponse(status=307, headers={"Location": cdn})
    http.routes[cdn] = FakeResponse(body=b"jpeg", headers={"Content-Type": "image/jpeg"})
    assert download_media(url, max_bytes=1000) == (b"jpeg", "image/jpeg")
    assert [(u, k["auth"]) for u, k in http.calls] == [(url, ("ACtest", TWILIO_TOKEN)), (cdn, None)]


@pytest.mark.parametrize("location", ["https://evil.example/steal", "http://media.twiliocdn.com/x"])
def test_a_redirect_off_the_twilio_media_hosts_or_to_http_is_not_followed(http, location):
    url = "https://api.twilio.com/2010-04-01/Media/ME1"
    http.routes[url] = FakeResponse(status=302, headers={"Location": location})
    with pytest.raises(MediaRefused):
        download_media(url, max_bytes=1000)
    assert [u for u, _ in http.calls] == [url]


def test_endless_redirects_stop(http):
    url = "https://api.twilio.com/2010-04-01/Media/ME1"
    http.routes[url] = FakeResponse(status=302, headers={"Location": url})
    with pytest.raises(requests.TooManyRedirects):
        download_media(url, max_bytes=1000)
    assert len(http.calls) == sms_ingest.MEDIA_REDIRECTS + 1


def test_the_media_hosts_setting_decides(http, settings):
    settings.TWILIO_MEDIA_HOSTS = ["media.example.org"]
    with pytest.raises(MediaRefused):
        download_media("https://api.twilio.com/2010-04-01/Media/ME1", max_bytes=1000)
    http.routes["https://media.example.org/ME1"] = FakeResponse(
        body=b"x", headers={"Content-Type": "image/png"}
    )
    assert download_media("https://media.example.org/ME1", max_bytes=1000) == (b"x", "image/png")


@pytest.mark.django_db(transaction=True)
def test_a_signed_mms_with_a_foreign_media_url_is_filed_with_a_note_and_the_url_kept(client, http, patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA)
    SendingLineFactory(number=LINE)
    foreign = "https://evil.example/media/ME1.jpg"
    params = {"MessageSid": "SM" + "7" * 32, "From": MARIA, "To": LINE, "Body": "See photo", "NumMedia": "1",
              "MediaUrl0": foreign, "MediaContentType0": "image/jpeg"}  # fmt: skip
    signature = twilio_signature(f"http://testserver{SMS_URL}", params)
    response = client.post(
        SMS_URL,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 200
    assert http.calls == []
    raw = RawInbound.objects.get()
    assert raw.payload["MediaUrl0"] == foreign
    assert raw.processed_at is not None and raw.attempts == 1  # refused at once: no download retries
    message = raw.message
    assert message.attachments.count() == 0
    assert message.body_text.startswith(
        "See photo\n\nAttachment “mms-1.jpg” was not stored: its address was refused"
    )
    assert "evil.example is not a Twilio media host" in message.body_text
    assert "The address is kept with the received item." in message.body_text
