"""The Django project of the framework scenarios, in one module: settings, views, URLconf.

Settings as a deployment has them: DEBUG off, a SECRET_KEY, ALLOWED_HOSTS, the
middleware ``django-admin startproject`` installs (security, sessions, common,
CSRF, authentication, messages, clickjacking) and a URLconf.  Sessions are
signed cookies and there is no database: the views touch neither.
``application`` is the WSGI callable every server under test imports
(``django_app:application``).
"""
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret-3f1c9a2e7b6d4e08a5c1f0b9d8e7a6c5",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        MESSAGE_STORAGE="django.contrib.messages.storage.cookie.CookieStorage",
        USE_TZ=True,
    )

import django  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

django.setup()


def hello(request):
    return HttpResponse("Hello, World!", content_type="text/plain")


def json_message(request):
    return JsonResponse({"message": "Hello, World!"})


urlpatterns = [
    path("", hello),
    path("json", json_message),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
