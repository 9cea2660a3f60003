"""A small real Django project in one module, with WhiteNoise serving its static files."""
import tempfile

from django.conf import settings

# Tests put the files they fetch here; WhiteNoise finds them at request time.
STATIC_ROOT = tempfile.mkdtemp(prefix="fastwsgi-static-")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-key",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["whitenoise.middleware.WhiteNoiseMiddleware",
                    "django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=["django.contrib.staticfiles"],
        STATIC_URL="/static/",
        STATIC_ROOT=str(STATIC_ROOT),
        WHITENOISE_AUTOREFRESH=True,
        WHITENOISE_USE_FINDERS=False,
    )

import django  # noqa: E402
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

django.setup()


def hello(request, name):
    return HttpResponse(f"Hello, {name}!", content_type="text/plain")


@csrf_exempt
def upload(request):
    return JsonResponse({"size": len(request.body), "method": request.method,
                         "path": request.path, "query": request.GET.get("q")})


def stream(request):
    return StreamingHttpResponse((f"line{i}\n" for i in range(3)), content_type="text/plain")


urlpatterns = [
    path("hello/<str:name>", hello),
    path("upload", upload),
    path("stream", stream),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
