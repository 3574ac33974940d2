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
    #[error("{}`{key}`: {message}", in_file(.path.as_deref()))]
    Invalid {
        /// The file, when the configuration came from one.
        path: Option<PathBuf>,
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
    /// How `compute` runs.
    pub compute: ComputeConfig,
}

/// `[compute]`: resources of a compute run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// The memory `compute` plans its entity buckets for, such as `"4GiB"` or `"512MiB"`
    /// (`--memory-limit` overrides it). More events than fit make more buckets.
    pub memory_limit: String,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig { memory_limit: "4GiB".to_owned() }
    }
}

impl ComputeConfig {
    /// `memory_limit` in bytes (validated on load).
    pub fn memory_limit_bytes(&self) -> u64 {
        parse_bytes(&self.memory_limit).unwrap_or(DEFAULT_MEMORY_LIMIT)
    }
}

/// The default `[compute] memory_limit`: 4 GiB.
const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;
/// The smallest memory limit accepted: 64 MiB.
const MIN_MEMORY_LIMIT: u64 = 64 << 20;

/// A byte size such as `4GiB`, `512MiB`, `2GB` or `1073741824`: a whole number and an optional
/// unit (B, KB, MB, GB, TB powers of 1000; KiB, MiB, GiB, TiB powers of 1024).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let factor: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
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
            compute: ComputeConfig::default(),
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

/// The configuration file a run uses when none is given and the working directory has it.
pub const DEFAULT_CONFIG_FILE: &str = "crmkpi.toml";

impl Config {
    /// The run's configuration: the `explicit` file, else `./crmkpi.toml` when it exists, else
    /// `fallback` when it exists, else the built-in defaults. Returns it with the file it came
    /// from (none: defaults).
    pub fn discover(
        explicit: Option<&Path>,
        fallback: Option<&Path>,
    ) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let candidate = match explicit {
            Some(path) => Some(path.to_owned()),
            None => [Some(Path::new(DEFAULT_CONFIG_FILE)), fallback]
                .into_iter()
                .flatten()
                .find(|path| path.exists())
                .map(Path::to_owned),
        };
        match candidate {
            Some(path) => Ok((Config::load(&path)?, Some(path))),
            None => Ok((Config::default(), None)),
        }
    }

    /// Reads, parses and validates a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            ConfigError::Invalid { key, message, .. } => {
                ConfigError::Invalid { path: Some(path.to_owned()), key, message }
            }
            other => other,
        })
    }

    /// Parses and validates TOML text; defaults fill every key not given.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: PathBuf::new(), message: error.to_string() })?;
        config.resolved()
    }

    /// Checks ranges and fills the defaults that depend on other keys. Every numeric key is
    /// checked, so that no value can make a table NaN, infinite or overflow: an error names
    /// the key, the value given and what is allowed.
    pub fn resolved(mut self) -> Result<Config, ConfigError> {
        check_days("churn_after_days", self.churn_after_days, 1)?;
        check_days("new_revenue_window_days", self.new_revenue_window_days, 0)?;
        check_days("attribution_window_days", self.attribution_window_days, 0)?;
        check_share("max_reject_ratio", self.max_reject_ratio)?;
        if let Some(seats) = self.crm_seats {
            check_count("crm_seats", seats, 1, u32::MAX)?;
        }
        if self.currency.trim().is_empty() {
            return Err(invalid("currency", "must be an ISO 4217 code such as \"EUR\""));
        }
        for (code, rate) in &self.fx {
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(invalid(
                    &format!("fx.{code}"),
                    &format!("must be a finite rate greater than 0, got {rate}"),
                ));
            }
        }
        check_days("clv.unit_days", self.clv.unit_days, 1)?;
        check_count("clv.horizon_units", self.clv.horizon_units, 1, MAX_DAYS)?;
        check_count("clv.horizon_months", self.clv.horizon_months, 1, MAX_MONTHS)?;
        let discount = self.clv.monthly_discount_rate;
        if !(discount.is_finite() && discount >= 0.0) {
            return Err(invalid(
                "clv.monthly_discount_rate",
                &format!("must be a finite rate of 0 or more, got {discount}"),
            ));
        }
        for (stage, probability) in &self.pipeline.win_probability {
            check_share(&format!("pipeline.win_probability.{stage}"), *probability)?;
        }
        if self.business_hours.days.is_empty() {
            return Err(invalid("business_hours.days", "must name at least one weekday, such as [\"mon\"]"));
        }
        let start = parse_clock(&self.business_hours.start)
            .ok_or_else(|| invalid("business_hours.start", "must be a local time HH:MM"))?;
        let end = parse_clock(&self.business_hours.end)
            .ok_or_else(|| invalid("business_hours.end", "must be a local time HH:MM"))?;
        if start >= end {
            return Err(invalid("business_hours.end", "must be later than business_hours.start"));
        }
        let weights = &self.health;
        let named_weights = [
            ("health.w_recency", weights.w_recency),
            ("health.w_frequency", weights.w_frequency),
            ("health.w_sentiment", weights.w_sentiment),
            ("health.w_support", weights.w_support),
        ];
        for (key, weight) in named_weights {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(invalid(key, &format!("must be a finite weight of 0 or more, got {weight}")));
            }
        }
        if named_weights.iter().all(|(_, weight)| *weight == 0.0) {
            return Err(invalid(
                "health",
                "at least one of the weights w_recency, w_frequency, w_sentiment, w_support must be greater than 0",
            ));
        }
        match parse_bytes(&self.compute.memory_limit) {
            Some(bytes) if bytes >= MIN_MEMORY_LIMIT => {}
            _ => {
                return Err(invalid(
                    "compute.memory_limit",
                    &format!(
                        "must be a size of at least 64MiB such as \"4GiB\" or \"512MiB\", got \"{}\"",
                        self.compute.memory_limit
                    ),
                ));
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

/// The longest day window or unit accepted: 100 years, far beyond any KPI's need and far from
/// overflowing microsecond arithmetic.
const MAX_DAYS: u32 = 36_500;
/// The longest horizon in months accepted: 100 years.
const MAX_MONTHS: u32 = 1_200;

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid { path: None, key: key.to_owned(), message: message.to_owned() }
}

/// What a message about a key starts with: `configuration file <path>: key ` when the
/// configuration came from a file, else `configuration key `.
fn in_file(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("configuration file {}: key ", path.display()),
        None => "configuration key ".to_owned(),
    }
}

/// A whole number of days from `min` to [`MAX_DAYS`].
fn check_days(key: &str, days: u32, min: u32) -> Result<(), ConfigError> {
    if (min..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(invalid(key, &format!("must be between {min} and {MAX_DAYS} days, got {days}")))
    }
}

/// A count from `min` to `max`.
fn check_count(key: &str, count: u32, min: u32, max: u32) -> Result<(), ConfigError> {
    if (min..=max).contains(&count) {
        Ok(())
    } else if max == u32::MAX {
        Err(invalid(key, &format!("must be at least {min}, got {count}")))
    } else {
        Err(invalid(key, &format!("must be between {min} and {max}, got {count}")))
    }
}

/// A share or probability: from 0 to 1 (NaN is outside).
fn check_share(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, &format!("must be between 0 and 1, got {value}")))
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
    fn byte_sizes() {
        assert_eq!(parse_bytes("4GiB"), Some(4 << 30));
        assert_eq!(parse_bytes("512 MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("1073741824"), Some(1 << 30));
        assert_eq!(parse_bytes("GiB"), None);
        assert_eq!(parse_bytes("-1GiB"), None);
        assert_eq!(parse_bytes("99999999999TiB"), None);
        let config = Config::from_toml("[compute]\nmemory_limit = \"512MiB\"").expect("valid");
        assert_eq!(config.compute.memory_limit_bytes(), 512 << 20);
        assert_eq!(Config::default().compute.memory_limit_bytes(), 4 << 30);
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

    /// Every value that is out of range is refused with an error naming its key.
    #[test]
    fn every_out_of_range_value_is_refused_naming_its_key() {
        let cases = [
            ("churn_after_days = 0", "churn_after_days"),
            ("churn_after_days = 36501", "churn_after_days"),
            ("new_revenue_window_days = 40000", "new_revenue_window_days"),
            ("attribution_window_days = 4000000000", "attribution_window_days"),
            ("max_reject_ratio = -0.1", "max_reject_ratio"),
            ("max_reject_ratio = 1.01", "max_reject_ratio"),
            ("max_reject_ratio = nan", "max_reject_ratio"),
            ("crm_seats = 0", "crm_seats"),
            ("[fx]\nUSD = 0.0", "fx.USD"),
            ("[fx]\nUSD = -0.92", "fx.USD"),
            ("[fx]\nUSD = inf", "fx.USD"),
            ("[clv]\nunit_days = 0", "clv.unit_days"),
            ("[clv]\nhorizon_units = 0", "clv.horizon_units"),
            ("[clv]\nhorizon_months = 0", "clv.horizon_months"),
            ("[clv]\nhorizon_months = 5000", "clv.horizon_months"),
            ("[clv]\nmonthly_discount_rate = -0.5", "clv.monthly_discount_rate"),
            ("[clv]\nmonthly_discount_rate = -1.0", "clv.monthly_discount_rate"),
            ("[clv]\nmonthly_discount_rate = nan", "clv.monthly_discount_rate"),
            ("[pipeline.win_probability]\nproposal = 1.5", "pipeline.win_probability.proposal"),
            ("[pipeline.win_probability]\nproposal = -0.1", "pipeline.win_probability.proposal"),
            ("[business_hours]\ndays = []", "business_hours.days"),
            ("[compute]\nmemory_limit = \"lots\"", "compute.memory_limit"),
            ("[compute]\nmemory_limit = \"1MiB\"", "compute.memory_limit"),
            ("[compute]\nmemory_limit = \"4 parsecs\"", "compute.memory_limit"),
            ("[business_hours]\nstart = \"17:00\"", "business_hours.end"),
            ("[business_hours]\nend = \"08:59\"", "business_hours.end"),
            ("[business_hours]\nstart = \"9\"", "business_hours.start"),
            ("[health]\nw_recency = -0.4", "health.w_recency"),
            ("[health]\nw_frequency = inf", "health.w_frequency"),
            ("[health]\nw_sentiment = nan", "health.w_sentiment"),
            ("[health]\nw_support = -1e-9", "health.w_support"),
            ("[health]\nw_recency = 0\nw_frequency = 0\nw_sentiment = 0\nw_support = 0", "health"),
        ];
        for (text, key) in cases {
            let error = Config::from_toml(text).expect_err(text);
            assert!(matches!(&error, ConfigError::Invalid { key: named, .. } if named == key), "{text}: {error}");
            assert!(error.to_string().contains(&format!("`{key}`")), "{text}: {error}");
        }
    }

    /// Negative values of whole-number keys are type errors of the TOML parser, which names
    /// the key too.
    #[test]
    fn negative_whole_numbers_are_refused_naming_the_key() {
        for (text, key) in [
            ("churn_after_days = -90", "churn_after_days"),
            ("attribution_window_days = -1", "attribution_window_days"),
            ("crm_seats = -3", "crm_seats"),
            ("[clv]\nunit_days = -7", "unit_days"),
        ] {
            let error = Config::from_toml(text).expect_err(text);
            assert!(matches!(error, ConfigError::Parse { .. }), "{text}: {error}");
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
    }

    /// The edges of every range are accepted.
    #[test]
    fn values_at_the_edges_are_accepted() {
        let text = r#"
churn_after_days = 1
new_revenue_window_days = 0
attribution_window_days = 36500
max_reject_ratio = 0
crm_seats = 1
[clv]
unit_days = 1
horizon_units = 1
horizon_months = 1200
monthly_discount_rate = 0
[pipeline.win_probability]
won = 1.0
dead = 0.0
[business_hours]
days = ["sun"]
start = "00:00"
end = "00:01"
[health]
w_recency = 1
w_frequency = 0
w_sentiment = 0
w_support = 0
"#;
        let config = Config::from_toml(text).expect("edges are valid");
        assert_eq!(config.churn_after_days, 1);
        assert_eq!(config.clv.horizon_months, 1_200);
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
