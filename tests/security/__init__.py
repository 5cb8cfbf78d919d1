"""Security hardening: headers, sign-in lockout, uploads, the access matrix."""
