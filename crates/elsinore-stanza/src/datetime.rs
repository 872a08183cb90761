//! XEP-0082 date and time profiles, in UTC, over milliseconds since the Unix epoch.
//!
//! Parsing is strict (the profile's exact shape, real calendar dates, an
//! explicit zone); writing is canonical (`Z`, milliseconds only when not zero).
//! Time is always a value passed in: nothing here reads a clock.

use alloc::string::String;

use core::fmt::Write as _;

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeError {
    /// Not the XEP-0082 `CCYY-MM-DDThh:mm:ss[.sss]TZD` shape.
    Syntax,
    /// A field out of range (month 13, February 30, hour 24, …).
    Range,
    /// Before 1970 or too far in the future to represent.
    OutOfEpoch,
}

impl core::fmt::Display for DateTimeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DateTimeError::Syntax => "not an XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD)",
            DateTimeError::Range => "a date or time field is out of range",
            DateTimeError::OutOfEpoch => "the date is before 1970 or too far in the future",
        })
    }
}

impl core::error::Error for DateTimeError {}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both casts are of values in 1..=31 and 1..=12 by construction.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Milliseconds since the epoch of 0000-01-01T00:00:00Z and of 9999-12-31T23:59:59.999Z,
/// the range of XEP-0082's four-digit years.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Date and time of day of an instant, clamped to years 0000-9999.
fn split(unix_ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let t = unix_ms.clamp(MIN_MS, MAX_MS);
    let secs = t.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    (
        y,
        mo,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.rem_euclid(1000),
    )
}

/// An unsigned instant as a signed one (past year 9999 either way, so clamped alike).
fn signed(unix_ms: u64) -> i64 {
    i64::try_from(unix_ms).unwrap_or(i64::MAX)
}

/// [`format_datetime`] for any instant, also before 1970 (clamped to years 0000-9999).
pub fn format_datetime_ms(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = split(unix_ms);
    let mut out = String::with_capacity(24);
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if ms != 0 {
        let _ = write!(out, ".{ms:03}");
    }
    out.push('Z');
    out
}

/// XEP-0082 DateTime in UTC: `2026-11-22T04:50:00Z`, or `…:00.123Z` with milliseconds.
pub fn format_datetime(unix_ms: u64) -> String {
    format_datetime_ms(signed(unix_ms))
}

/// The legacy `jabber:x:delay` stamp (XEP-0091): `20261122T04:50:00`, UTC.
pub fn format_legacy_stamp(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = split(signed(unix_ms));
    let mut out = String::with_capacity(17);
    let _ = write!(out, "{y:04}{mo:02}{d:02}T{h:02}:{mi:02}:{s:02}");
    out
}

fn digits(b: &[u8]) -> Result<u32, DateTimeError> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return Err(DateTimeError::Syntax);
    }
    Ok(b.iter().fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0')))
}

/// Parse an XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`, TZD `Z` or `±hh:mm`)
/// into milliseconds since the Unix epoch; an instant before 1970 is
/// [`DateTimeError::OutOfEpoch`] (see [`parse_datetime_ms`]). Fractions beyond
/// milliseconds are truncated; leap seconds are refused.
pub fn parse_datetime(s: &str) -> Result<u64, DateTimeError> {
    u64::try_from(parse_datetime_ms(s)?).map_err(|_| DateTimeError::OutOfEpoch)
}

/// [`parse_datetime`] for any instant XEP-0082 can write, before 1970 too (negative).
pub fn parse_datetime_ms(s: &str) -> Result<i64, DateTimeError> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(DateTimeError::Syntax);
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let mut rest = &b[19..];
    let mut millis = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(DateTimeError::Syntax);
        }
        let frac = &rest[1..1 + n];
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
        }
        rest = &rest[1 + n..];
    }
    let offset_secs: i64 = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = i64::from(digits(&[*h1, *h2])?);
            let om = i64::from(digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return Err(DateTimeError::Range);
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return Err(DateTimeError::Syntax),
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(DateTimeError::Range);
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    // Four-digit years and an offset of at most ±99:59 keep this far from overflow.
    secs.checked_mul(1000)
        .and_then(|v| v.checked_add(i64::from(millis)))
        .ok_or(DateTimeError::OutOfEpoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0082_examples() {
        // XEP-0082 section 3.2: 1969-07-21T02:56:15Z is before the epoch.
        assert_eq!(
            parse_datetime("1969-07-21T02:56:15Z"),
            Err(DateTimeError::OutOfEpoch)
        );
        let t = parse_datetime("2002-09-10T23:41:07Z").expect("valid");
        assert_eq!(t, 1_031_701_267_000);
        assert_eq!(format_datetime(t), "2002-09-10T23:41:07Z");
        assert_eq!(format_legacy_stamp(t), "20020910T23:41:07");
        assert_eq!(parse_datetime("2002-09-10T19:41:07-04:00"), Ok(t));
        assert_eq!(parse_datetime("2002-09-10T23:41:07.123Z"), Ok(t + 123));
        assert_eq!(format_datetime(t + 123), "2002-09-10T23:41:07.123Z");
        assert_eq!(parse_datetime("2002-09-10T23:41:07.123456Z"), Ok(t + 123));
    }

    #[test]
    fn before_1970_with_the_signed_forms() {
        // XEP-0082 section 3.2's example: the first step on the Moon.
        let t = parse_datetime_ms("1969-07-21T02:56:15Z").expect("valid");
        assert_eq!(t, -14_159_025_000);
        assert_eq!(format_datetime_ms(t), "1969-07-21T02:56:15Z");
        assert_eq!(parse_datetime_ms("1969-07-20T21:56:15-05:00"), Ok(t));
        assert_eq!(format_datetime_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_datetime_ms(MIN_MS), "0000-01-01T00:00:00Z");
        assert_eq!(format_datetime_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        let mut t = MIN_MS;
        while t < MAX_MS {
            assert_eq!(parse_datetime_ms(&format_datetime_ms(t)), Ok(t));
            t += 86_400_000 * 3_701 + 3_723_457;
        }
    }

    #[test]
    fn strictness() {
        for bad in [
            "2002-09-10 23:41:07Z",
            "2002-09-10T23:41:07",
            "2002-9-10T23:41:07Z",
            "2002-09-10T23:41:07.Z",
            "2002-09-10T23:41:07+0400",
            "２002-09-10T23:41:07Z",
        ] {
            assert_eq!(parse_datetime(bad), Err(DateTimeError::Syntax), "{bad}");
        }
        for bad in [
            "2002-13-10T23:41:07Z",
            "2003-02-29T00:00:00Z",
            "2002-09-10T24:00:00Z",
            "2002-09-10T23:60:00Z",
            "2002-09-10T23:41:60Z",
        ] {
            assert_eq!(parse_datetime(bad), Err(DateTimeError::Range), "{bad}");
        }
        assert!(parse_datetime("2004-02-29T00:00:00Z").is_ok(), "leap day");
    }

    #[test]
    fn round_trip_over_a_range() {
        let mut t = 0u64;
        while t < 4_102_444_800_000 {
            assert_eq!(parse_datetime(&format_datetime(t)), Ok(t));
            t += 86_400_000 * 37 + 3_723_456;
        }
    }
}
