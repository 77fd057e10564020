# Django's English DATETIME_FORMAT ends in "p.m.", so every sentence that ends with a time read "p.m..";
# a 24-hour time with the zone named ("30 Nov 2026, 21:44 JST") ends in a letter and is unambiguous abroad.
DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i"
