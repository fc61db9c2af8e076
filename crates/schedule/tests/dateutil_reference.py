"""Reference occurrences from python-dateutil + zoneinfo, for dateutil_reference.rs.

stdin: one case per line, tab-separated: zone, DTSTART (local, %Y-%m-%dT%H:%M:%S), RRULE,
after (RFC 3339), n. stdout: one line per case, the first n occurrences strictly after
`after`, space-separated. Semantics: dateutil expands naive wall times; each is localized
with ZoneInfo via replace(tzinfo=...) (fold=0: a gap time takes the offset before the gap,
a repeated time its first occurrence). The instants are then put in order and equal ones
kept once: a gap time shifted forward can land after real wall times that follow the gap,
and those still run (every matching wall time that exists runs once). Expansion goes on
until the wall times are two days past the n-th instant, beyond any DST shift.
A rule with a UTC UNTIL gets an aware DTSTART (dateutil then compares instants).
"""
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr


def main():
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        zone, dtstart, rule, after, n = line.split("\t")
        z = ZoneInfo(zone)
        n = int(n)
        start = datetime.strptime(dtstart, "%Y-%m-%dT%H:%M:%S")
        after = datetime.fromisoformat(after.replace("Z", "+00:00"))
        if "UNTIL=" in rule and rule.rstrip(";").split("UNTIL=")[1].split(";")[0].endswith("Z"):
            start = start.replace(tzinfo=z)
        seen = set()
        for occ in rrulestr(rule, dtstart=start):
            instant = occ.replace(tzinfo=z).astimezone(timezone.utc)
            if instant > after:
                seen.add(instant)
            if len(seen) >= n:
                nth = sorted(seen)[n - 1]
                if instant - nth > timedelta(days=2):
                    break
        out = [i.astimezone(z).isoformat() for i in sorted(seen)[:n]]
        print(" ".join(out), flush=True)


main()
