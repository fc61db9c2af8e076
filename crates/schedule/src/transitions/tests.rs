//! The cached tables against chrono-tz itself: every zone's changes, wall times around each
//! change, random wall times from 1800 to 2200, and the cases that break naive caches.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta};
use chrono_tz::{TZ_VARIANTS, Tz};

use super::{SCAN_FROM, SCAN_TO, ZoneTable, offset_at};
use crate::zone::{Resolved, Resolver, resolve_with_chrono_tz};

fn same(a: &Resolved, b: &Resolved) -> bool {
    a.at == b.at && a.at.offset() == b.at.offset() && a.floor == b.floor
}

fn check(tz: Tz, resolver: &mut Resolver, local: NaiveDateTime) {
    let want = resolve_with_chrono_tz(tz, local);
    let got = resolver.resolve(local);
    assert!(
        same(&got, &want),
        "{tz} {local}: table gives {:?} (floor {}), chrono-tz {:?} (floor {})",
        got.at,
        got.floor,
        want.at,
        want.floor
    );
}

fn local(ts: i64) -> NaiveDateTime {
    DateTime::from_timestamp(ts, 0)
        .expect("in range")
        .naive_utc()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_opt(h, mi, 0))
        .expect("valid")
}

/// Every zone: each recorded change sits exactly where chrono-tz changes offset, and wall
/// times around each change (in the gap, in the repeat, at its edges) resolve as chrono-tz
/// resolves them, through one resolver that moves back and forth between spans.
#[test]
fn every_zone_matches_chrono_tz_around_every_change() {
    let around = [
        -90_000, -7_201, -7_200, -3_601, -3_600, -1_801, -1_800, -1, 0, 1, 899, 1_799, 1_800,
        2_700, 3_599, 3_600, 3_601, 5_400, 7_199, 7_200, 86_400, 90_000,
    ];
    for &tz in TZ_VARIANTS.iter() {
        let table = ZoneTable::of(tz);
        let mut resolver = Resolver::new(tz);
        for i in 1..table.len() {
            let start = table.start(i);
            assert_eq!(offset_at(tz, start), table.offset(i), "{tz} at {start}");
            assert_eq!(
                offset_at(tz, start - 1),
                table.offset(i - 1),
                "{tz} at {start}-1"
            );
            // Around the change on the wall clock of both sides.
            for wall in [start + table.secs(i - 1), start + table.secs(i)] {
                for d in around {
                    check(tz, &mut resolver, local(wall + d));
                }
            }
        }
    }
}

/// Offsets do not change outside the scanned range, in any zone (the table's first and last
/// spans reach out forever, as chrono-tz's do).
#[test]
fn scan_covers_every_change() {
    let before = [
        -62_135_596_800,
        -30_000_000_000,
        -10_000_000_000,
        SCAN_FROM - 1,
    ];
    let after = [SCAN_TO + 1, 5_000_000_000, 10_000_000_000, 253_402_300_799];
    for &tz in TZ_VARIANTS.iter() {
        let first = offset_at(tz, SCAN_FROM);
        for t in before {
            assert_eq!(offset_at(tz, t), first, "{tz} at {t}");
        }
        let last = offset_at(tz, SCAN_TO);
        for t in after {
            assert_eq!(offset_at(tz, t), last, "{tz} at {t}");
        }
    }
}

/// Random wall times (a fixed-seed generator) in random zones from 1800 to 2200, each
/// resolved by a fresh resolver and by one reused across the whole sequence.
#[test]
fn random_wall_times_match_chrono_tz() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let span = (7_258_118_400 - SCAN_FROM) as u64; // 1800 .. 2200
    let mut shared: Vec<Resolver> = TZ_VARIANTS.iter().map(|&tz| Resolver::new(tz)).collect();
    for _ in 0..100_000 {
        let z = (next() % TZ_VARIANTS.len() as u64) as usize;
        let tz = TZ_VARIANTS[z];
        let wall = local(SCAN_FROM + (next() % span) as i64);
        check(tz, &mut Resolver::new(tz), wall);
        check(tz, &mut shared[z], wall);
    }
}

/// Ascending wall times every 15 minutes through years with changes, the way iterators
/// resolve them (the remembered span moves forward), in the zones that break naive caches.
#[test]
fn ascending_walk_through_hard_zones() {
    let zones = [
        "Australia/Lord_Howe", // 30-minute DST
        "Europe/Moscow",       // permanent DST 2011, back to standard 2014
        "Pacific/Apia",        // skipped 30 December 2011 entirely
        "America/Sao_Paulo",   // DST abolished in 2019
        "Asia/Kolkata",        // LMT +05:53:28 until 1854, +05:30 later
        "Europe/Dublin",       // negative DST (winter is the "daylight" offset)
        "America/St_Johns",    // -03:30 with a double-DST year (1988)
        "Antarctica/Troll",    // +00 / +02 DST
        "Africa/Casablanca",   // DST suspended each Ramadan, changes through 2087
        "America/Santiago",    // changes at midnight
        "Pacific/Kiritimati",  // jumped from -10:40 to +14
        "Asia/Gaza",           // changes 8 days apart around Ramadan
    ];
    for name in zones {
        let tz: Tz = name.parse().expect("zone");
        let mut resolver = Resolver::new(tz);
        for (from, to) in [
            (1845, 1860),
            (1930, 1940),
            (1985, 1990),
            (2010, 2015),
            (2019, 2030),
        ] {
            let mut t = at(from, 1, 1, 0, 0);
            let end = at(to, 1, 1, 0, 0);
            while t < end {
                check(tz, &mut resolver, t);
                t += TimeDelta::minutes(15);
            }
        }
    }
}

/// Far past and far future: the first and last spans extend (chrono-tz has no rules after
/// 2099: later summers keep the last offset), and the extremes of the calendar still resolve.
#[test]
fn far_past_and_future_beyond_the_table() {
    for name in [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "UTC",
    ] {
        let tz: Tz = name.parse().expect("zone");
        let mut resolver = Resolver::new(tz);
        for wall in [
            at(1, 1, 2, 0, 0),
            at(1700, 7, 1, 12, 0),
            at(2150, 7, 1, 12, 0),
            at(3000, 3, 30, 2, 30),
            at(9999, 12, 30, 23, 59),
        ] {
            check(tz, &mut resolver, wall);
        }
    }
}

#[test]
fn lord_howe_half_hour_changes() {
    let tz: Tz = "Australia/Lord_Howe".parse().expect("zone");
    let mut r = Resolver::new(tz);
    // Spring forward 02:00 -> 02:30 on 2025-10-05: 02:15 is read with +10:30.
    let gap = r.resolve(at(2025, 10, 5, 2, 15));
    assert_eq!(gap.at.to_rfc3339(), "2025-10-05T02:45:00+11:00");
    assert_eq!(gap.floor.to_rfc3339(), "2025-10-04T15:30:00+00:00");
    // Fall back 02:00 -> 01:30 on 2025-04-06: 01:45 is first read with +11:00.
    let rep = r.resolve(at(2025, 4, 6, 1, 45));
    assert_eq!(rep.at.to_rfc3339(), "2025-04-06T01:45:00+11:00");
    let after = r.resolve(at(2025, 4, 6, 2, 0));
    assert_eq!(after.at.to_rfc3339(), "2025-04-06T02:00:00+10:30");
}

#[test]
fn historical_local_mean_time_offsets() {
    let tz: Tz = "Asia/Kolkata".parse().expect("zone");
    let t = Resolver::new(tz).resolve(at(1850, 6, 1, 12, 0));
    assert_eq!(t.at.to_rfc3339(), "1850-06-01T12:00:00+05:53");
    assert_eq!(t.at.to_utc().to_rfc3339(), "1850-06-01T06:06:32+00:00");
    // New York kept local mean time (-04:56:02) until noon on 18 November 1883.
    let tz: Tz = "America/New_York".parse().expect("zone");
    let t = Resolver::new(tz).resolve(at(1880, 1, 15, 9, 0));
    assert_eq!(t.at.to_utc().to_rfc3339(), "1880-01-15T13:56:02+00:00");
}

#[test]
fn a_skipped_day_is_one_gap() {
    // Samoa moved across the date line: 2011-12-29 23:59:59 -10:00 was followed by
    // 2011-12-31 00:00:00 +14:00. Noon on the 30th is read with the offset before the gap.
    let tz: Tz = "Pacific/Apia".parse().expect("zone");
    let mut r = Resolver::new(tz);
    let t = r.resolve(at(2011, 12, 30, 12, 0));
    assert_eq!(t.at.to_rfc3339(), "2011-12-31T12:00:00+14:00");
    assert_eq!(t.floor.to_rfc3339(), "2011-12-30T10:00:00+00:00");
    let next = r.resolve(at(2011, 12, 31, 0, 0));
    assert_eq!(next.at.to_rfc3339(), "2011-12-31T00:00:00+14:00");
}

#[test]
fn tables_are_built_once_per_zone() {
    let tz: Tz = "Europe/Chisinau".parse().expect("zone");
    assert!(std::ptr::eq(ZoneTable::of(tz), ZoneTable::of(tz)));
    assert_eq!(ZoneTable::of(Tz::UTC).len(), 1);
    // Berlin: standard time and summer time since 1980, twice a year.
    assert!(ZoneTable::of("Europe/Berlin".parse().expect("zone")).len() > 200);
}
