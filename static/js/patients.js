// Patient pages behaviour (copy email).
"use strict";
