"""The notification bell (namespace ``careportal``, under ``/notifications/``)."""

from django.urls import path

from .views import notifications

urlpatterns = [
    path("", notifications.notification_list, name="notifications"),
    path("read-all/", notifications.notification_read_all, name="notifications_read_all"),
    path("<int:pk>/read/", notifications.notification_read, name="notification_read"),
    path("<int:pk>/open/", notifications.notification_open, name="notification_open"),
]
