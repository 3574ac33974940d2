//! The run configuration of cli.md: the TOML file's keys with their defaults, validated on load.
//! Unknown keys and wrong types are errors naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What went wrong while loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and position.
        message: String,
    },
    /// A key has a value of the right type but outside its allowed range.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// The resolved configuration of a run: every key of cli.md with its default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Reporting time zone: days and months are cut in it.
    pub timezone: Tz,
    /// Zone of dump timestamps that carry no offset.
    pub source_timezone: Tz,
    /// Reporting currency (ISO 4217).
    pub currency: String,
    /// A customer is alive on day d with an order in `(d - churn_after_days, d]`.
    pub churn_after_days: u32,
    /// Orders this many days after the first order day no longer count as new revenue.
    pub new_revenue_window_days: u32,
    /// How many days back an order looks for the campaign response it is attributed to.
    pub attribution_window_days: u32,
    /// A run whose rejected / read share is strictly greater fails with exit code 3.
    pub max_reject_ratio: f64,
    /// Licensed CRM seats; the denominator of `crm_adoption_rate` (null when unset).
    pub crm_seats: Option<u32>,
    /// Reporting-currency units per unit of each foreign currency.
    pub fx: BTreeMap<String, f64>,
    /// Customer-lifetime-value model settings.
    pub clv: ClvConfig,
    /// Pipeline settings.
    pub pipeline: PipelineConfig,
    /// The weekly schedule that business minutes are counted in.
    pub business_hours: BusinessHours,
    /// Weights of the health score.
    pub health: HealthWeights,
}

/// `[clv]`: units and horizons of the BG/NBD and Gamma-Gamma predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClvConfig {
    /// Days per time unit of recency, `t` and the model (7: weeks).
    pub unit_days: u32,
    /// Horizon of `expected_purchases`, in units.
    pub horizon_units: u32,
    /// Months summed in `predicted_clv`.
    pub horizon_months: u32,
    /// Monthly discount rate of `predicted_clv`.
    pub monthly_discount_rate: f64,
}

/// `[pipeline]`: forecast settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Win probability per stage name; stages not listed have a null probability.
    pub win_probability: BTreeMap<String, f64>,
}

/// `[business_hours]`: the weekly schedule of business time, in its own time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusinessHours {
    /// Zone of the schedule; the reporting time zone when not given.
    pub timezone: Option<Tz>,
    /// Business weekdays.
    pub days: Vec<BusinessDay>,
    /// Local start of a business day, `HH:MM`.
    pub start: String,
    /// Local end of a business day, `HH:MM`.
    pub end: String,
    /// Local dates that are not business days.
    pub holidays: Vec<NaiveDate>,
}

/// A weekday as written in `business_hours.days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum BusinessDay {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl BusinessDay {
    /// The chrono weekday.
    pub fn weekday(self) -> Weekday {
        match self {
            BusinessDay::Mon => Weekday::Mon,
            BusinessDay::Tue => Weekday::Tue,
            BusinessDay::Wed => Weekday::Wed,
            BusinessDay::Thu => Weekday::Thu,
            BusinessDay::Fri => Weekday::Fri,
            BusinessDay::Sat => Weekday::Sat,
            BusinessDay::Sun => Weekday::Sun,
        }
    }
}

/// `[health]`: weights of the health score's four parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthWeights {
    /// Weight of recency.
    pub w_recency: f64,
    /// Weight of frequency.
    pub w_frequency: f64,
    /// Weight of sentiment (latest NPS).
    pub w_sentiment: f64,
    /// Weight of support (open tickets).
    pub w_support: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timezone: Tz::UTC,
            source_timezone: Tz::UTC,
            currency: "EUR".to_owned(),
            churn_after_days: 90,
            new_revenue_window_days: 365,
            attribution_window_days: 7,
            max_reject_ratio: 0.01,
            crm_seats: None,
            fx: BTreeMap::new(),
            clv: ClvConfig::default(),
            pipeline: PipelineConfig::default(),
            business_hours: BusinessHours::default(),
            health: HealthWeights::default(),
        }
    }
}

impl Default for ClvConfig {
    fn default() -> Self {
        ClvConfig { unit_days: 7, horizon_units: 52, horizon_months: 12, monthly_discount_rate: 0.01 }
    }
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            timezone: None,
            days: vec![BusinessDay::Mon, BusinessDay::Tue, BusinessDay::Wed, BusinessDay::Thu, BusinessDay::Fri],
            start: "09:00".to_owned(),
            end: "17:00".to_owned(),
            holidays: Vec::new(),
        }
    }
}

impl Default for HealthWeights {
    fn default() -> Self {
        HealthWeights { w_recency: 0.4, w_frequency: 0.3, w_sentiment: 0.2, w_support: 0.1 }
    }
}

impl Config {
    /// Reads, parses and validates a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates TOML text; defaults fill every key not given.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: PathBuf::new(), message: error.to_string() })?;
        config.resolved()
    }

    /// Checks ranges and fills the defaults that depend on other keys.
    pub fn resolved(mut self) -> Result<Config, ConfigError> {
        let invalid =
            |key: &str, message: &str| ConfigError::Invalid { key: key.to_owned(), message: message.to_owned() };
        if !(0.0..=1.0).contains(&self.max_reject_ratio) {
            return Err(invalid("max_reject_ratio", "must be between 0 and 1"));
        }
        if self.currency.trim().is_empty() {
            return Err(invalid("currency", "must be an ISO 4217 code such as \"EUR\""));
        }
        for (code, rate) in &self.fx {
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(invalid(&format!("fx.{code}"), "must be a finite rate greater than 0"));
            }
        }
        if self.clv.unit_days == 0 {
            return Err(invalid("clv.unit_days", "must be at least 1"));
        }
        if !(self.clv.monthly_discount_rate.is_finite() && self.clv.monthly_discount_rate > -1.0) {
            return Err(invalid("clv.monthly_discount_rate", "must be a finite rate greater than -1"));
        }
        for (stage, probability) in &self.pipeline.win_probability {
            if !(0.0..=1.0).contains(probability) {
                return Err(invalid(&format!("pipeline.win_probability.{stage}"), "must be between 0 and 1"));
            }
        }
        let start = parse_clock(&self.business_hours.start)
            .ok_or_else(|| invalid("business_hours.start", "must be a local time HH:MM"))?;
        let end = parse_clock(&self.business_hours.end)
            .ok_or_else(|| invalid("business_hours.end", "must be a local time HH:MM"))?;
        if start >= end {
            return Err(invalid("business_hours.end", "must be later than business_hours.start"));
        }
        let weights = &self.health;
        for (key, weight) in [
            ("health.w_recency", weights.w_recency),
            ("health.w_frequency", weights.w_frequency),
            ("health.w_sentiment", weights.w_sentiment),
            ("health.w_support", weights.w_support),
        ] {
            if !weight.is_finite() {
                return Err(invalid(key, "must be a finite number"));
            }
        }
        self.business_hours.timezone.get_or_insert(self.timezone);
        Ok(self)
    }

    /// The rate converting one unit of `code` into the reporting currency, if known.
    pub fn fx_rate(&self, code: &str) -> Option<f64> {
        if code == self.currency { Some(1.0) } else { self.fx.get(code).copied() }
    }

    /// SHA-256 of the resolved configuration's canonical JSON, hex encoded.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(json);
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl BusinessHours {
    /// Local start of a business day (validated on load).
    pub fn start_time(&self) -> NaiveTime {
        parse_clock(&self.start).unwrap_or(NaiveTime::MIN)
    }

    /// Local end of a business day (validated on load).
    pub fn end_time(&self) -> NaiveTime {
        parse_clock(&self.end).unwrap_or(NaiveTime::MIN)
    }
}

fn parse_clock(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cli_md() {
        let config = Config::from_toml("").expect("empty config");
        assert_eq!(config.timezone, Tz::UTC);
        assert_eq!(config.currency, "EUR");
        assert_eq!(config.churn_after_days, 90);
        assert_eq!(config.max_reject_ratio, 0.01);
        assert_eq!(config.clv.unit_days, 7);
        assert_eq!(config.business_hours.timezone, Some(Tz::UTC));
        assert_eq!(config.business_hours.days.len(), 5);
        assert_eq!(config.health.w_recency, 0.4);
    }

    #[test]
    fn full_example_parses() {
        let text = r#"
timezone = "Europe/Berlin"
source_timezone = "UTC"
currency = "EUR"
churn_after_days = 90
crm_seats = 25
[fx]
USD = 0.92
[clv]
unit_days = 7
[pipeline.win_probability]
qualification = 0.1
[business_hours]
timezone = "Europe/Berlin"
days = ["mon", "tue"]
start = "09:00"
end = "17:00"
holidays = ["2024-12-25"]
[health]
w_recency = 0.4
"#;
        let config = Config::from_toml(text).expect("valid config");
        assert_eq!(config.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(config.fx_rate("USD"), Some(0.92));
        assert_eq!(config.fx_rate("EUR"), Some(1.0));
        assert_eq!(config.fx_rate("GBP"), None);
        assert_eq!(config.crm_seats, Some(25));
        assert_eq!(config.business_hours.start_time(), NaiveTime::from_hms_opt(9, 0, 0).expect("time"));
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::from_toml("churn_after_dayz = 3").expect_err("unknown key");
        assert!(error.to_string().contains("churn_after_dayz"), "{error}");
        let error = Config::from_toml("[clv]\nunits = 3").expect_err("unknown nested key");
        assert!(error.to_string().contains("units"), "{error}");
    }

    #[test]
    fn wrong_type_is_named() {
        let error = Config::from_toml("churn_after_days = \"ninety\"").expect_err("wrong type");
        assert!(error.to_string().contains("churn_after_days"), "{error}");
        let error = Config::from_toml("timezone = \"Mars/Olympus\"").expect_err("bad zone");
        assert!(error.to_string().contains("timezone"), "{error}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let error = Config::from_toml("max_reject_ratio = 1.5").expect_err("range");
        assert!(error.to_string().contains("max_reject_ratio"), "{error}");
        let error = Config::from_toml("[business_hours]\nstart = \"18:00\"").expect_err("order");
        assert!(error.to_string().contains("business_hours.end"), "{error}");
        let error = Config::from_toml("[fx]\nUSD = -1.0").expect_err("fx");
        assert!(error.to_string().contains("fx.USD"), "{error}");
    }
}
