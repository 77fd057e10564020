# How a Japanese office worker writes a moment: "2026年11月30日 21:44 JST", 24-hour, the zone named (guests
# abroad read it too). Django's own ja formats have no zone.
DATETIME_FORMAT = "Y年n月j日 H:i T"
SHORT_DATETIME_FORMAT = "Y/m/d H:i T"
DATE_FORMAT = "Y年n月j日"
TIME_FORMAT = "H:i"
