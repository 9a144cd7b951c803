//! Budget periods: a budget resets at the start of each UTC day, week (Monday), month, or never.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    #[default]
    Monthly,
    Total,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Total => "total",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            "total" => Self::Total,
            _ => return None,
        })
    }

    /// The start (unix seconds, UTC) of the period that holds `now`.
    pub fn start(self, now: i64) -> i64 {
        let day = now.div_euclid(86_400);
        let start_day = match self {
            Self::Total => return 0,
            Self::Daily => day,
            // 1970-01-01 was a Thursday: day + 3 counts from a Monday.
            Self::Weekly => day - (day + 3).rem_euclid(7),
            Self::Monthly => {
                let (year, month, _) = civil_from_days(day);
                days_from_civil(year, month, 1)
            }
        };
        start_day * 86_400
    }
}

// Howard Hinnant's algorithms between days since 1970-01-01 and the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let (month, day) = (i64::from(month), i64::from(day));
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-24T13:45:00Z, a Tuesday.
    const NOW: i64 = 1_795_527_900;

    #[test]
    fn period_starts_in_utc() {
        assert_eq!(Period::Daily.start(NOW), 1_795_478_400); // 2026-11-24T00:00Z
        assert_eq!(Period::Weekly.start(NOW), 1_795_392_000); // Monday 2026-11-23
        assert_eq!(Period::Monthly.start(NOW), 1_793_491_200); // 2026-11-01
        assert_eq!(Period::Total.start(NOW), 0);
        assert_eq!(Period::Monthly.start(1_772_323_200), 1_772_323_200); // 2026-03-01 itself
        assert_eq!(Period::Monthly.start(1_772_323_199), 1_769_904_000); // 2026-02-28 -> 02-01
    }

    #[test]
    fn calendar_round_trip() {
        for day in [-1_000_000, -1, 0, 59, 365, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
