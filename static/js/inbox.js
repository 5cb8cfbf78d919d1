// Inbox page behaviour (keyboard shortcuts, reply box tools). No inline scripts anywhere.
"use strict";
