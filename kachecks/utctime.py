"""UTC times as LDAP and X.509 write them (GeneralizedTime) to Unix time.

``calendar.timegm`` would do, but ``calendar`` imports datetime and locale:
~2 ms on every forked check run that needs one subtraction.
"""


def generalized_time(text):
    """Seconds since the epoch of ``YYYYmmddHHMMSS`` (UTC; anything after it is ignored)."""
    days = days_since_epoch(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    return days * 86400 + int(text[8:10]) * 3600 + int(text[10:12]) * 60 + int(text[12:14])


def days_since_epoch(year, month, day):
    """Days from 1970-01-01 to a proleptic Gregorian date."""
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError("bad date")
    year -= month <= 2
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468
