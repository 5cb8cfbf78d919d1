"""Every API route that takes a JSON body refuses text the database cannot store — a NUL (``\\u0000``) or a lone
surrogate escape (``\\ud800``), in a key or a string value at any depth — with a 400 problem naming the field, before
the view runs: nothing changes. The routes are read from the API's URL patterns (and checked against the OpenAPI
schema), so a new route is covered without being listed here."""

import json
import re

import pytest
from django.apps import apps
from django.urls import URLPattern, reverse
from drf_spectacular.generators import SchemaGenerator

from inbox.api.urls import v1
from inbox.models import Message
from tests.factories import AttachmentFactory, CommunicationFactory, MessageFactory

pytestmark = pytest.mark.django_db
BODY_METHODS = ("post", "put", "patch", "delete")
SAMPLE_KWARGS = {"inbox": "my", "folder": "assigned"}


def json_routes() -> list[tuple[str, str]]:
    """(URL name, method) of every API route whose view takes a body."""
    found = []
    for pattern in v1:
        assert isinstance(pattern, URLPattern)
        view = pattern.callback.cls
        found += [(pattern.name, method) for method in BODY_METHODS if hasattr(view, method)]
    return found


def template(route: str) -> str:
    return re.sub(r"\{[^}]*\}|<(?:\w+:)?\w+>", "{}", route)


def test_the_routes_cover_every_operation_with_a_request_body_in_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    with_body = {
        (template(path), method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    assert with_body, "the schema lists no operation with a request body"
    by_name = {p.name: template("/api/v1/" + str(p.pattern)) for p in v1}
    assert with_body <= {(by_name[name], method) for name, method in json_routes()}


@pytest.fixture
def communication(patient, api_user):
    communication = CommunicationFactory(patient=patient, assignee=api_user)
    message = MessageFactory(communication=communication, body_text="Can I take it with food?")
    AttachmentFactory(message=message)
    return communication


def url_for(name: str, communication) -> str:
    if name == "not_found":
        return "/api/v1/nowhere/"
    attachment = communication.messages.get().attachments.get()
    kwargs = {"pk": communication.pk, "attachment_id": attachment.pk, **SAMPLE_KWARGS}
    pattern = next(p for p in v1 if p.name == name)
    wanted = set(re.findall(r"<(?:\w+:)?(\w+)>", str(pattern.pattern)))
    return reverse(f"api:{name}", kwargs={k: v for k, v in kwargs.items() if k in wanted})


def snapshot(communication) -> dict:
    counts = {model._meta.label: model.objects.count() for model in apps.get_models() if model._meta.managed}
    row = type(communication).objects.filter(pk=communication.pk).values().get()
    return {"counts": counts, "communication": row}


BAD_BODIES = [
    pytest.param({"body": "Yes\x00 with food", "close": False}, "body", "NUL", id="nul-value"),
    pytest.param({"body": "Yes \ud800 with food"}, "body", "lone surrogate", id="surrogate-value"),
    pytest.param({"bo\x00dy": "Yes"}, "bo\\u0000dy", "NUL", id="nul-key"),
    pytest.param({"b\udfffody": "Yes"}, "b\\udfffody", "lone surrogate", id="surrogate-key"),
    pytest.param(
        {"attachments": [{"name": "x"}, {"name": "a\x00.pdf"}]}, "attachments[1].name", "NUL", id="nested"
    ),
    pytest.param(["fine", "\ud800"], "[1]", "lone surrogate", id="list"),
]


@pytest.mark.parametrize("name, method", json_routes())
@pytest.mark.parametrize("body, field, kind", BAD_BODIES)
def test_unstorable_json_is_a_400_problem_naming_the_field_and_changes_nothing(
    api, communication, name, method, body, field, kind
):
    before = snapshot(communication)
    response = getattr(api, method)(
        url_for(name, communication), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert kind in problem["detail"] and f"(field: {field})" in problem["detail"]
    assert list(problem["errors"]) == [field]
    assert snapshot(communication) == before


def test_the_same_reply_without_it_is_sent(api, communication):
    response = api.post(
        reverse("api:send", args=[communication.pk]),
        data=json.dumps({"body": "Yes, with food.", "close": False}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert Message.objects.filter(communication=communication, body_text="Yes, with food.").exists()


def test_a_charset_json_content_type_and_a_json_suffix_are_checked_too(api, communication):
    url = reverse("api:send", args=[communication.pk])
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = api.post(url, data=json.dumps({"body": "\x00"}), content_type=content_type)
        assert response.status_code == 400, content_type


def test_a_body_that_is_not_json_is_left_to_the_view(api, communication):
    response = api.post(
        reverse("api:send", args=[communication.pk]), data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "errors" not in response.json()  # the API's own parse error, not this refusal
