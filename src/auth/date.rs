//! Timestamps as S3 authentication sees them.
//!
//! SigV4 carries its time as ISO 8601 basic format (`20130524T000000Z`, "Create a string to
//! sign", AWS General Reference), error bodies print ISO 8601 with milliseconds
//! (`2013-05-24T00:00:00.000Z`, the `ServerTime` element of `RequestTimeTooSkewed`), and SigV2
//! signs whatever RFC 2616 date the client put in `Date` or `x-amz-date` ("Signing and
//! authenticating REST requests", Time stamp requirement). All arithmetic is on the proleptic
//! Gregorian calendar in UTC, done with integers so that no input can panic.

const SECONDS_PER_DAY: i64 = 86_400;

/// Days between 1970-01-01 and the given civil date (negative before the epoch).
///
/// The month is 1..=12 and the day 1..=31; out-of-range values are not rejected here (callers
/// validate first) but still produce a number rather than a panic.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    // Shifting the year to start in March puts the leap day last, so the day-of-year formula
    // needs no leap-year branch; eras of 400 years repeat exactly.
    let month = i64::from(month);
    let day = i64::from(day);
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
///
/// Years beyond the `i32` range saturate instead of wrapping.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let shifted = days.saturating_add(719_468);
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    let year = i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX });
    // Both values are provably within 1..=31 and 1..=12, so the conversions cannot fail.
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Unix seconds of a validated civil date and time of day, or `None` if any field is out of range.
fn unix_from_parts(year: i32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let seconds_of_day = i64::from(hour * 3_600 + min * 60 + sec);
    Some(days_from_civil(year, month, day) * SECONDS_PER_DAY + seconds_of_day)
}

/// Splits unix seconds into (year, month, day, hour, minute, second) in UTC.
fn parts_from_unix(unix: i64) -> (i32, u32, u32, u32, u32, u32) {
    let (year, month, day) = civil_from_days(unix.div_euclid(SECONDS_PER_DAY));
    // rem_euclid keeps the second of the day in 0..86400, which always fits a u32.
    let second_of_day = u32::try_from(unix.rem_euclid(SECONDS_PER_DAY)).unwrap_or(0);
    (year, month, day, second_of_day / 3_600, second_of_day / 60 % 60, second_of_day % 60)
}

/// Parses a run of ASCII digits; `None` if any byte is not a digit or the slice is empty.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
}

/// Parses the SigV4 timestamp `YYYYMMDD'T'HHMMSS'Z'` into unix seconds.
///
/// Only this exact 16-byte form is accepted ("Authenticating Requests (AWS Signature Version
/// 4)": `x-amz-date` and `X-Amz-Date` are ISO 8601 basic format); the calendar is validated
/// so `20130230T000000Z` is rejected.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    unix_from_parts(
        year,
        digits(&b[4..6])?,
        digits(&b[6..8])?,
        digits(&b[9..11])?,
        digits(&b[11..13])?,
        digits(&b[13..15])?,
    )
}

/// Formats unix seconds as the SigV4 timestamp `YYYYMMDD'T'HHMMSS'Z'`.
pub fn format_amz_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = parts_from_unix(unix);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Formats unix milliseconds as ISO 8601 with milliseconds, e.g. `2013-05-24T00:00:00.000Z`.
pub fn format_iso8601_millis(unix_millis: i64) -> String {
    let (y, mo, d, h, mi, s) = parts_from_unix(unix_millis.div_euclid(1_000));
    let millis = unix_millis.rem_euclid(1_000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| *m == lower)?;
    u32::try_from(index + 1).ok()
}

/// Parses `HH:MM:SS` into its three fields.
fn time_of_day(text: &str) -> Option<(u32, u32, u32)> {
    let mut fields = text.split(':');
    let hour = digits(fields.next()?.as_bytes())?;
    let min = digits(fields.next()?.as_bytes())?;
    let sec = digits(fields.next()?.as_bytes())?;
    fields.next().is_none().then_some((hour, min, sec))
}

/// Seconds east of UTC for a zone token: `GMT`, `UTC`, `UT`, `Z`, or `+hhmm` / `-hhmm`.
fn zone_offset(token: Option<&str>) -> Option<i64> {
    let Some(token) = token else {
        // asctime() dates carry no zone and are defined to be UTC (RFC 7231 section 7.1.1.1).
        return Some(0);
    };
    if ["GMT", "UTC", "UT", "Z"].iter().any(|z| token.eq_ignore_ascii_case(z)) {
        return Some(0);
    }
    let (sign, rest) = match token.as_bytes().first()? {
        b'+' => (1, &token[1..]),
        b'-' => (-1, &token[1..]),
        _ => return None,
    };
    if rest.len() != 4 {
        return None;
    }
    let hours = i64::from(digits(&rest.as_bytes()[..2])?);
    let minutes = i64::from(digits(&rest.as_bytes()[2..])?);
    Some(sign * (hours * 3_600 + minutes * 60))
}

/// Parses the three HTTP date forms of RFC 7231 section 7.1.1.1 (IMF-fixdate, RFC 850,
/// asctime) into unix seconds, also accepting a numeric zone such as `+0000`.
///
/// SigV2 clients put such dates in `Date` or `x-amz-date`; AWS's own SigV2 examples use
/// `+0000` rather than `GMT` ("Signing and authenticating REST requests", Authentication
/// examples), so the zone is parsed rather than assumed.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    let cleaned = text.replace(',', " ");
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    // A leading weekday name carries no information; it is dropped rather than cross-checked.
    if tokens.first().is_some_and(|t| t.bytes().all(|b| b.is_ascii_alphabetic()) && month_number(t).is_none()) {
        tokens.remove(0);
    }
    let (year, month, day, time, zone) = match tokens.as_slice() {
        // RFC 850: 06-Nov-94 08:49:37 GMT
        [dmy, time, rest @ ..] if dmy.contains('-') => {
            let mut parts = dmy.split('-');
            let day = digits(parts.next()?.as_bytes())?;
            let month = month_number(parts.next()?)?;
            let year_text = parts.next()?;
            let year = digits(year_text.as_bytes())?;
            let year = if year_text.len() == 2 {
                // Two-digit years are read as the nearest plausible century.
                if year < 70 { 2000 + year } else { 1900 + year }
            } else {
                year
            };
            (year, month, day, *time, zone_of(rest)?)
        }
        // asctime: Nov  6 08:49:37 1994
        [mon, day, time, year, rest @ ..] if month_number(mon).is_some() => {
            (digits(year.as_bytes())?, month_number(mon)?, digits(day.as_bytes())?, *time, zone_of(rest)?)
        }
        // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
        [day, mon, year, time, rest @ ..] => {
            (digits(year.as_bytes())?, month_number(mon)?, digits(day.as_bytes())?, *time, zone_of(rest)?)
        }
        _ => return None,
    };
    let (hour, min, sec) = time_of_day(time)?;
    let year = i32::try_from(year).ok()?;
    let local = unix_from_parts(year, month, day, hour, min, sec)?;
    Some(local - zone)
}

/// The zone offset from the tokens left after the time; more than one token is malformed.
fn zone_of(rest: &[&str]) -> Option<i64> {
    match rest {
        [] => zone_offset(None),
        [zone] => zone_offset(Some(zone)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2013, 5, 24), 15_849);
        assert_eq!(civil_from_days(15_849), (2013, 5, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn civil_from_days_never_panics_at_extremes() {
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
        let _ = format_amz_date(i64::MAX);
        let _ = format_amz_date(i64::MIN);
        let _ = format_iso8601_millis(i64::MIN);
        let _ = format_iso8601_millis(i64::MAX);
    }

    #[test]
    fn amz_date_parses_and_formats() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(format_amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(format_amz_date(1_709_251_199), "20240229T235959Z");
        assert_eq!(format_amz_date(-1), "19691231T235959Z");
    }

    #[test]
    fn amz_date_rejects_malformed_text() {
        for bad in [
            "",
            "20130524",
            "20130524T000000",
            "20130524T000000z",
            "20130524 000000Z",
            "2013-05-24T00:00:00Z",
            "20130230T000000Z",
            "20230229T000000Z",
            "20131324T000000Z",
            "20130524T240000Z",
            "20130524T006000Z",
            "20130524T000060Z",
            "2013052+T000000Z",
            "20130524T00000éZ",
            "ééééééééT000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn iso8601_millis_formats() {
        assert_eq!(format_iso8601_millis(1_369_353_600_000), "2013-05-24T00:00:00.000Z");
        assert_eq!(format_iso8601_millis(1_369_353_600_123), "2013-05-24T00:00:00.123Z");
        assert_eq!(format_iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let expected = Some(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 +0000"), expected);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100"), expected);
        assert_eq!(parse_http_date("06 Nov 1994 08:49:37 UTC"), expected);
        assert_eq!(parse_http_date("Tue, 27 Mar 2007 19:36:42 +0000"), Some(1_175_024_202));
    }

    #[test]
    fn http_dates_reject_garbage() {
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nov 1994 08:49:37 +00",
            "Sun, 06 Nov 99999999999 08:49:37 GMT",
            "20130524T000000Z",
            "日, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
