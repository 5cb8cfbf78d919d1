"""Print the demo sign-ins (``make run`` shows them on every start)."""

from django.core.management.base import BaseCommand

from adminportal.models import User
from careportal.demo import demo_logins


class Command(BaseCommand):
    help = "Print the demo logins, one per demo role."

    def handle(self, *args, **options):
        logins = [
            login
            for login in demo_logins()
            if User.objects.filter(username=login.username, is_active=True).exists()
        ]
        if not logins:
            self.stdout.write("No demo users in this database (it was not seeded by seed_demo).")
            return
        self.stdout.write(self.style.SUCCESS("Demo logins:"))
        for login in logins:
            self.stdout.write(f"  {login.username:<12} / {login.password}  ({login.role})")
        self.stdout.write("The other demo staff (maya.chen, grace.kim, …) sign in with the same password.")
