"""Headers and sessions: a Content-Security-Policy with no inline script or style and no eval (htmx configured for
it), clickjacking and sniffing protections, secure/HttpOnly/SameSite cookies, HSTS in production."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from careportal.chat import make_chat_token
from tests.careportal.secure_support import secure_conversation
from tests.careportal.secure_support import url as secure_url

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
BASE_LAYOUTS = ["templates/base.html", "careportal/templates/careportal/chat/base.html"]


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parsed = {}
    for part in header.split(";"):
        name, *values = part.strip().split()
        parsed[name] = values
    return parsed


def assert_strict_policy(response):
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]  # same-origin ws:/wss: included (CSP Level 3)
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header and "*" not in header
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_sign_in_page_has_the_strict_policy(client, db):
    assert_strict_policy(client.get(reverse("login")))


def test_portal_pages_have_the_strict_policy(client, nurse, lead):
    client.force_login(lead)
    for name in ("careportal:home", "careportal:inbox", "careportal:patients"):
        response = client.get(reverse(name), follow=True)
        assert response.status_code == 200, name
        assert_strict_policy(response)


def test_designer_and_admin_portal_pages_have_the_strict_policy(client, designer, administrator):
    client.force_login(designer)
    assert_strict_policy(client.get(reverse("designer:home")))
    client.force_login(administrator)
    assert_strict_policy(client.get(reverse("adminportal:home")))


def test_patient_facing_pages_have_the_strict_policy(client, nurse, patient):
    assert_strict_policy(client.get(reverse("chat:page", args=[make_chat_token(patient)])))
    message = secure_conversation(nurse, patient)
    assert_strict_policy(client.get(secure_url("start", message)))


def test_errors_and_json_answers_carry_it_too(client, nurse):
    client.force_login(nurse)
    assert_strict_policy(client.get("/inbox/c/999999/"))


def _templates():
    for directory in TEMPLATE_DIRS:
        yield from directory.rglob("*.html")


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVAL_ATTRIBUTES = re.compile(
    r"\s(on[a-z]+|hx-on[:\-][\w:\-]*|hx-vars|style)\s*=|hx-vals\s*=\s*['\"]\s*(js|javascript):|javascript:",
    re.IGNORECASE,
)
TEMPLATE_COMMENT = re.compile(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}|\{#.*?#\}", re.DOTALL)
TRIGGER_FILTER = re.compile(r"hx-trigger\s*=\s*(['\"])[^'\"]*\[[^'\"]*\1", re.IGNORECASE)


def test_no_template_has_inline_script_style_handlers_or_htmx_eval():
    problems = []
    for template in _templates():
        text = TEMPLATE_COMMENT.sub("", template.read_text())
        relative = template.relative_to(ROOT)
        for pattern, what in (
            (INLINE_SCRIPT, "inline <script>"),
            (re.compile(r"<style[\s>]", re.IGNORECASE), "<style> block"),
            (EVAL_ATTRIBUTES, "inline handler, style attribute, hx-on/hx-vars or javascript:"),
            (TRIGGER_FILTER, "hx-trigger filter [...] (needs eval)"),
        ):
            for match in pattern.finditer(text):
                problems.append(f"{relative}: {what}: {match.group(0)!r}")
    assert not problems, "\n".join(problems)


def test_static_javascript_never_evaluates_strings():
    pattern = re.compile(r"\beval\(|new Function\(|setTimeout\(\s*['\"`]|setInterval\(\s*['\"`]|hx-on")
    problems = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "static" / "js").glob("*.js")
        for match in pattern.finditer(path.read_text())
    ]
    assert not problems, problems


@pytest.mark.parametrize("layout", BASE_LAYOUTS)
def test_every_base_layout_configures_htmx_for_the_policy(layout):
    text = (ROOT / layout).read_text()
    match = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", text)
    assert match, f"{layout} has no htmx-config meta"
    config = json.loads(match.group(1))
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False
    assert "style" not in config["attributesToSettle"]


def test_every_page_specific_htmx_config_is_as_strict():
    for template in _templates():
        for content in re.findall(r"<meta name=\"htmx-config\" content='([^']+)'>", template.read_text()):
            config = json.loads(content)
            assert config.get("allowEval") is False, template
            assert config.get("includeIndicatorStyles") is False, template
            assert "style" not in config.get("attributesToSettle", ["style"]), template


def test_every_full_page_layout_is_one_of_the_configured_bases():
    """A page with its own <html> must be a base layout above (so it carries the htmx config)."""
    layouts = {
        str(t.relative_to(ROOT))
        for t in _templates()
        if "<html" in t.read_text() and "django/forms" not in str(t)
    }
    assert layouts == set(BASE_LAYOUTS)


def test_session_and_csrf_cookies_are_httponly_and_samesite(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": "correct-horse-battery"})
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax"
    page = client.get(reverse("login"))
    assert page.status_code in (200, 302)


def _production_settings() -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "names = ['SESSION_COOKIE_SECURE','CSRF_COOKIE_SECURE','SESSION_COOKIE_HTTPONLY','SESSION_COOKIE_SAMESITE',"
        "'CSRF_COOKIE_SAMESITE','SECURE_SSL_REDIRECT','SECURE_HSTS_SECONDS','SECURE_HSTS_INCLUDE_SUBDOMAINS',"
        "'SECURE_HSTS_PRELOAD','X_FRAME_OPTIONS','SECURE_CONTENT_TYPE_NOSNIFF','SECURE_REFERRER_POLICY',"
        "'SECURE_CROSS_ORIGIN_OPENER_POLICY','AUTHENTICATION_BACKENDS','MIDDLEWARE']; "
        "print(json.dumps({n: getattr(settings, n) for n in names}))"
    )
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "PYTEST_VERSION", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        SECRET_KEY="x9!" + "k" * 60,
        ALLOWED_HOSTS="inbox.clinic.example",
        DJANGO_SETTINGS_MODULE="inbox_project.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_harden_cookies_and_transport():
    values = _production_settings()
    assert (
        values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    )
    assert values["SESSION_COOKIE_SAMESITE"] == values["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and values["SECURE_HSTS_PRELOAD"]
    assert values["X_FRAME_OPTIONS"] == "DENY" and values["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_CROSS_ORIGIN_OPENER_POLICY"] == "same-origin"
    assert values["AUTHENTICATION_BACKENDS"][0] == "inbox_project.security.SignInLockoutBackend"
    assert values["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"
    assert "csp.middleware.CSPMiddleware" in values["MIDDLEWARE"]


def test_production_responses_carry_hsts_over_https(client, db, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    response = client.get(reverse("login"), secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000; includeSubDomains")
