//! `metav1.Time` and `metav1.MicroTime` as Go's JSON writes them: RFC 3339 in UTC.

use super::error::ProtobufError;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Fractional digits to print after the seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// `metav1.Time`: `2025-01-02T03:04:05Z` (fraction truncated).
    Seconds,
    /// `metav1.MicroTime`: `2025-01-02T03:04:05.123456Z`.
    Micros,
}

/// Formats a protobuf `Timestamp{seconds, nanos}` as Go's JSON does for the given precision.
pub(crate) fn format_rfc3339(
    seconds: i64,
    nanos: i64,
    precision: Precision,
) -> Result<String, ProtobufError> {
    // Go's time.Unix normalises nanos outside [0, 1e9) into the seconds.
    let seconds = seconds
        .checked_add(nanos.div_euclid(NANOS_PER_SECOND))
        .ok_or(ProtobufError::TimeOutOfRange { seconds })?;
    let nanos = nanos.rem_euclid(NANOS_PER_SECOND);

    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(ProtobufError::TimeOutOfRange { seconds });
    }
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    Ok(match precision {
        Precision::Seconds => format!("{date}Z"),
        Precision::Micros => format!("{date}.{:06}Z", nanos / 1000),
    })
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_seconds_and_micros_like_go() {
        // 2025-01-02T03:04:05Z
        let seconds = 1_735_787_045;
        assert_eq!(
            format_rfc3339(seconds, 123_456_789, Precision::Seconds).unwrap(),
            "2025-01-02T03:04:05Z"
        );
        assert_eq!(
            format_rfc3339(seconds, 123_456_789, Precision::Micros).unwrap(),
            "2025-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            format_rfc3339(0, 0, Precision::Micros).unwrap(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn handles_leap_days_century_rules_and_pre_epoch_times() {
        // 2024-02-29T23:59:59Z
        assert_eq!(
            format_rfc3339(1_709_251_199, 0, Precision::Seconds).unwrap(),
            "2024-02-29T23:59:59Z"
        );
        // 2000-03-01T00:00:00Z (2000 is a leap year)
        assert_eq!(
            format_rfc3339(951_868_800, 0, Precision::Seconds).unwrap(),
            "2000-03-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(-1, 0, Precision::Seconds).unwrap(),
            "1969-12-31T23:59:59Z"
        );
        // Negative nanos borrow from the seconds, as time.Unix does.
        assert_eq!(
            format_rfc3339(10, -1, Precision::Micros).unwrap(),
            "1970-01-01T00:00:09.999999Z"
        );
        // 0000-01-01 and 9999-12-31T23:59:59 are the bounds Go accepts.
        assert_eq!(
            format_rfc3339(-62_167_219_200, 0, Precision::Seconds).unwrap(),
            "0000-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(253_402_300_799, 0, Precision::Seconds).unwrap(),
            "9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn rejects_years_rfc3339_cannot_express() {
        assert!(matches!(
            format_rfc3339(253_402_300_800, 0, Precision::Seconds),
            Err(ProtobufError::TimeOutOfRange { .. })
        ));
        assert!(format_rfc3339(i64::MIN, 0, Precision::Seconds).is_err());
        assert!(format_rfc3339(i64::MAX, NANOS_PER_SECOND, Precision::Seconds).is_err());
    }
}
