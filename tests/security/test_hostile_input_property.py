"""Property-based: arbitrary text — NUL, lone surrogates, right-to-left marks, invalid UTF-8, 100 KB strings — in
every GET parameter of every URL name never gives a server error.

Which parameters a view reads is learnt, not listed: one plain request per URL name records every key the view
looks up on ``request.GET`` (forms and DRF serializers included), and hypothesis then fills those keys plus one
unknown key with hostile text. URL names and their arguments come from the access matrix's registry
(``tests/security/matrix_cases.py``), so a new URL is fuzzed the day it is added.
"""

from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import quote

import pytest
from django.http import QueryDict
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.security.conftest import client_for
from tests.security.matrix_cases import case_for
from tests.security.test_access_matrix import NAMES

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("hooks_configured"),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),  # the 100 KB example
]

GET_NAMES = [name for name in NAMES if case_for(name).method == "get" and not name.startswith("admin:")]
# Django's own admin views are covered by Django's tests; one changelist stands in for them (search and filters).
GET_NAMES.append("admin:inbox_communication_changelist")

LONE_SURROGATE = "\ud800"
RTL = "\u202e\u200f"
HOSTILE_EXAMPLES = [
    "\x00",
    "Maria\x00Lopez",
    LONE_SURROGATE,
    f"{RTL}gnissim{RTL}",
    "x" * 100_000,
    "%",
    "\uffff\ufeff",
]

# Any text (surrogates included: on the wire they are the bytes a broken client sends), plus raw invalid UTF-8.
hostile_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(HOSTILE_EXAMPLES),
    st.binary(max_size=20).map(lambda raw: raw.decode("latin-1")),
)


def encoded(value: str) -> str:
    """Percent-encode ``value`` as a client would put it on the wire; lone surrogates as their raw bytes."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@contextmanager
def recording_get_keys():
    """Record every key looked up on a QueryDict while the block runs (``get``, ``getlist``, ``[]``, ``in``)."""
    seen: set[str] = set()
    originals = {
        "get": MultiValueDict.get,
        "getlist": MultiValueDict.getlist,
        "__getitem__": MultiValueDict.__getitem__,
        "__contains__": dict.__contains__,
    }

    def wrap(name):
        original = originals[name]

        def recorder(self, key, *args, **kwargs):
            if isinstance(self, QueryDict) and isinstance(key, str):
                seen.add(key)
            return original(self, key, *args, **kwargs)

        return recorder

    for name in originals:
        setattr(QueryDict, name, wrap(name))
    try:
        yield seen
    finally:
        for name in originals:
            delattr(QueryDict, name)


def url_and_client(name, people, world):
    case = case_for(name)
    url = reverse(name, kwargs=case.kwargs(world))
    return url, client_for(case.member_user if case.member_user in people else "nurse", people)


def test_the_recorder_sees_the_parameters_a_view_reads(people, world):
    """Guards the fuzzing below: if recording found nothing, every URL would be fuzzed with no parameter at all."""
    url, client = url_and_client("careportal:inbox_rows", people, world)
    with recording_get_keys() as keys:
        client.get(url, HTTP_HX_REQUEST="true")
    assert {"q", "status", "channel"} <= keys


@pytest.mark.parametrize("name", GET_NAMES)
def test_hostile_text_in_every_get_parameter_never_gives_a_server_error(name, people, world):
    url, client = url_and_client(name, people, world)
    with recording_get_keys() as keys:
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            client.get(url, **headers)
    keys = sorted(keys | {"zz-unknown"})

    @settings(
        max_examples=6,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(values=st.lists(hostile_text, min_size=len(keys), max_size=len(keys)), partial=st.booleans())
    @example(values=[HOSTILE_EXAMPLES[0]] * len(keys), partial=False)
    @example(values=[HOSTILE_EXAMPLES[2]] * len(keys), partial=True)
    @example(values=[HOSTILE_EXAMPLES[4]] * len(keys), partial=False)
    @example(values=[HOSTILE_EXAMPLES[3]] * len(keys), partial=True)
    def fuzz(values, partial):
        query = "&".join(f"{encoded(key)}={encoded(value)}" for key, value in zip(keys, values, strict=True))
        headers = {"HTTP_HX_REQUEST": "true"} if partial else {}
        response = client.get(f"{url}?{query}", **headers)
        assert response.status_code < 500, f"{name} {keys} → {response.status_code}"
        if response.status_code == 400:
            assert response.content, f"{name}: a 400 without a reason"

    fuzz()
