//! `crmkpi generate`: realistic synthetic CRM dumps, deterministic per seed.
//!
//! Each customer lives a story over an 18-month window: website visits, a lead from a channel
//! (sometimes a campaign), qualification and contact by a rep, a deal moving through
//! qualification → proposal → negotiation (with re-entries, same-stage changes, losses with
//! reasons, and deals still open), repeat orders until the customer churns (each customer with
//! its own purchase rate and dropout probability; some orders in USD), renewals and
//! cancellations, support tickets with replies, reopens and resolutions, surveys, email
//! subscriptions and campaign messages. Spend and CRM-user activity are recorded daily.
//! At `dirty_rate`, records are replaced by dirty ones of every reject reason of events.md, and
//! plain duplicates are mixed in. Files rotate through the requested formats and compressions.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use crmkpi_schema::EventType;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::error::IngestError;
use crate::source::{Compression, Format};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Number of records to write (dirty ones and duplicates included).
    pub events: u64,
    /// Seed: the same seed and options give the same files.
    pub seed: u64,
    /// Output directory (created if missing); files already in it are never overwritten.
    pub out: PathBuf,
    /// Formats to rotate through.
    pub formats: Vec<Format>,
    /// Compressions to rotate through.
    pub compressions: Vec<Compression>,
    /// Share of records replaced by dirty records or duplicates.
    pub dirty_rate: f64,
    /// Records per file.
    pub events_per_file: u64,
}

/// Start of the generated window: 2024-01-01T00:00:00Z.
const WINDOW_START: i64 = 1_704_067_200;
/// Length of the generated window: 18 months.
const WINDOW_DAYS: u64 = 548;
const WINDOW_SECONDS: i64 = WINDOW_DAYS as i64 * 86_400;
/// Rough number of records one customer's story produces, to spread daily activity over the
/// whole window whatever the dump's size.
const EVENTS_PER_CUSTOMER: u64 = 20;
/// Records per simulated day (stories and daily activity together) below which daily activity
/// skips days, so that small dumps still spread spend and CRM activity over the whole window.
const DAILY_SPREAD: u64 = 30;
const CHANNELS: [&str; 6] = ["organic", "paid_search", "email", "referral", "social", "events"];
const STAGES: [&str; 3] = ["qualification", "proposal", "negotiation"];
const LOST_REASONS: [&str; 4] = ["price", "competitor", "no_budget", "timing"];
const CAMPAIGNS: u32 = 24;
const REPS: u32 = 18;
const AGENTS: u32 = 12;

/// One generated event before it is written.
#[derive(Debug, Clone, Default)]
struct Draft {
    event_type: Option<EventType>,
    at: i64,
    customer: Option<u64>,
    deal: Option<u64>,
    order: Option<u64>,
    ticket: Option<u64>,
    campaign: Option<u32>,
    owner: Option<u32>,
    stage: Option<&'static str>,
    amount: Option<f64>,
    currency: Option<&'static str>,
    channel: Option<&'static str>,
    kind: Option<&'static str>,
    category: Option<&'static str>,
    survey: Option<&'static str>,
    score: Option<i64>,
    reason: Option<&'static str>,
}

impl Draft {
    fn new(event_type: EventType, at: i64) -> Draft {
        Draft { event_type: Some(event_type), at, ..Draft::default() }
    }
}

/// Writes the dumps; returns the files written, in path order.
pub fn generate(options: &GenerateOptions) -> Result<Vec<PathBuf>, IngestError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| IngestError::GenerateIo { path, source }
    };
    let planned = planned_files(options);
    if let Some((path, _, _)) = planned.iter().find(|(path, _, _)| path.exists()) {
        return Err(IngestError::GenerateWouldOverwrite { path: path.clone() });
    }
    fs::create_dir_all(&options.out).map_err(io_error(&options.out))?;
    let mut rng = Pcg64Mcg::seed_from_u64(options.seed);
    let expected_customers = (options.events / EVENTS_PER_CUSTOMER).max(1);
    let mut world = World {
        customers_per_day: (expected_customers / WINDOW_DAYS).max(1),
        days_per_step: (WINDOW_DAYS * DAILY_SPREAD / options.events.max(1)).max(1),
        ..World::default()
    };
    let mut writer: Option<DumpWriter> = None;
    let mut written_files = Vec::new();
    let mut written = 0u64;
    let mut pending = Vec::new();
    while written < options.events {
        if pending.is_empty() {
            world.next_story(&mut rng, &mut pending);
            pending.reverse();
        }
        let Some(draft) = pending.pop() else { continue };
        if writer.as_ref().is_none_or(|current| current.records >= options.events_per_file) {
            if let Some(done) = writer.take() {
                written_files.push(done.finish()?);
            }
            let Some((path, format, compression)) = planned.get(written_files.len()) else { continue };
            writer = Some(DumpWriter::create(path, *format, *compression)?);
        }
        let Some(current) = writer.as_mut() else { continue };
        world.event_counter += 1;
        let id = format!("ev-{}-{}", options.seed, world.event_counter);
        let record = if rng.random::<f64>() < options.dirty_rate {
            world.dirty_record(&mut rng, current.format, &id, &draft)
        } else {
            let text = render(current.format, &id, &draft, &mut rng);
            world.last_clean = Some((id, draft));
            text
        };
        current.write_record(&record)?;
        written += 1;
    }
    if let Some(done) = writer.take() {
        written_files.push(done.finish()?);
    }
    Ok(written_files)
}

/// The files a run writes, in order: `events-<index>.<format>[.<compression>]`, rotating
/// through the formats and compressions.
fn planned_files(options: &GenerateOptions) -> Vec<(PathBuf, Format, Compression)> {
    let count = options.events.div_ceil(options.events_per_file.max(1));
    (0..count as usize)
        .map(|index| {
            let format = options.formats[index % options.formats.len()];
            let compression = options.compressions[index % options.compressions.len()];
            let extension = match format {
                Format::Ndjson => "ndjson",
                Format::Csv => "csv",
            };
            let suffix = match compression {
                Compression::None => "",
                Compression::Gzip => ".gz",
                Compression::Zstd => ".zst",
            };
            (options.out.join(format!("events-{index:05}.{extension}{suffix}")), format, compression)
        })
        .collect()
}

/// The generator's running state: id counters, day-level activity already emitted, and the
/// last clean event (for duplicates).
#[derive(Debug, Default)]
struct World {
    customers: u64,
    deals: u64,
    orders: u64,
    tickets: u64,
    event_counter: u64,
    dirty_counter: u64,
    last_clean: Option<(String, Draft)>,
    next_daily_at: i64,
    customers_per_day: u64,
    days_per_step: u64,
}

impl World {
    /// Appends the next story: usually one customer's life, and the daily spend and CRM-user
    /// activity whenever the story clock passes a new day.
    fn next_story(&mut self, rng: &mut Pcg64Mcg, out: &mut Vec<Draft>) {
        if self.customers.is_multiple_of(self.customers_per_day) {
            self.daily_activity(rng, out);
        }
        self.customers += 1;
        let customer = self.customers;
        let mut at = WINDOW_START + rng.random_range(0..WINDOW_SECONDS);
        let channel = (rng.random::<f64>() < 0.93).then(|| CHANNELS[rng.random_range(0..CHANNELS.len())]);
        let campaign = (rng.random::<f64>() < 0.3).then(|| rng.random_range(1..=CAMPAIGNS));
        for _ in 0..rng.random_range(1..=3) {
            out.push(Draft { customer: Some(customer), ..Draft::new(EventType::SiteVisited, at) });
            at += rng.random_range(60..86_400);
        }
        let lead_at = at;
        out.push(Draft { customer: Some(customer), channel, campaign, ..Draft::new(EventType::LeadCreated, at) });
        let rep = rng.random_range(1..=REPS);
        if rng.random::<f64>() < 0.8 {
            let contacted = at + rng.random_range(-3_600..172_800);
            out.push(Draft {
                customer: Some(customer),
                owner: Some(rep),
                ..Draft::new(EventType::LeadContacted, contacted)
            });
        }
        if rng.random::<f64>() < 0.5 {
            at += rng.random_range(3_600..604_800);
            out.push(Draft { customer: Some(customer), ..Draft::new(EventType::LeadQualified, at) });
        }
        if rng.random::<f64>() < 0.4 {
            at = self.deal_story(rng, customer, rep, at, out);
        }
        let buys = rng.random::<f64>() < 0.65;
        if buys {
            let first_order_at = at.max(lead_at + rng.random_range(0..2_592_000));
            at = self.order_story(rng, customer, first_order_at, out);
        }
        if rng.random::<f64>() < 0.35 {
            let opened_at = at + rng.random_range(0..5_184_000);
            self.ticket_story(rng, customer, opened_at, out);
        }
        if rng.random::<f64>() < 0.3 {
            let survey_at = at + rng.random_range(0..2_592_000);
            let (survey, max) = [("nps", 10), ("csat", 5), ("ces", 7)][rng.random_range(0..3)];
            let low = i64::from(survey != "nps");
            let score = rng.random_range(low..=max);
            out.push(Draft {
                customer: Some(customer),
                survey: Some(survey),
                score: Some(score),
                ..Draft::new(EventType::SurveyAnswered, survey_at)
            });
        }
        if rng.random::<f64>() < 0.4 {
            let mut email_at = lead_at + rng.random_range(0..604_800);
            for _ in 0..rng.random_range(1..=3) {
                let event_type =
                    if rng.random::<f64>() < 0.7 { EventType::EmailSubscribed } else { EventType::EmailUnsubscribed };
                out.push(Draft { customer: Some(customer), ..Draft::new(event_type, email_at) });
                email_at += rng.random_range(86_400..10_000_000);
            }
        }
        for _ in 0..rng.random_range(0..=3) {
            let campaign = rng.random_range(1..=CAMPAIGNS);
            let sent_at = WINDOW_START + rng.random_range(0..WINDOW_SECONDS);
            out.push(Draft {
                customer: Some(customer),
                campaign: Some(campaign),
                ..Draft::new(EventType::CampaignSent, sent_at)
            });
            if rng.random::<f64>() < 0.25 {
                let responded_at = sent_at + rng.random_range(60..259_200);
                out.push(Draft {
                    customer: Some(customer),
                    campaign: Some(campaign),
                    ..Draft::new(EventType::CampaignResponded, responded_at)
                });
                if rng.random::<f64>() < 0.3 {
                    self.orders += 1;
                    let ordered_at = responded_at + rng.random_range(0..8 * 86_400);
                    let amount = (rng.random_range(20.0..300.0_f64) * 100.0).round() / 100.0;
                    out.push(Draft {
                        customer: Some(customer),
                        order: Some(self.orders),
                        amount: Some(amount),
                        kind: Some("new"),
                        ..Draft::new(EventType::OrderPlaced, ordered_at)
                    });
                }
            }
        }
        out.retain(|draft| draft.at < WINDOW_START + WINDOW_SECONDS);
    }

    fn deal_story(&mut self, rng: &mut Pcg64Mcg, customer: u64, rep: u32, mut at: i64, out: &mut Vec<Draft>) -> i64 {
        self.deals += 1;
        let deal = self.deals;
        let mut amount = (rng.random_range(500.0..50_000.0_f64) / 10.0).round() * 10.0;
        let with_created = rng.random::<f64>() < 0.97;
        if with_created {
            out.push(Draft {
                deal: Some(deal),
                customer: Some(customer),
                owner: Some(rep),
                stage: Some(STAGES[0]),
                amount: Some(amount),
                ..Draft::new(EventType::DealCreated, at)
            });
        }
        let mut stage = 0usize;
        let mut steps = 0;
        while steps < 8 {
            steps += 1;
            at += rng.random_range(3_600..1_728_000);
            let roll = rng.random::<f64>();
            if roll < 0.12 {
                let event_type = if rng.random::<f64>() < 0.55 { EventType::DealWon } else { EventType::DealLost };
                let reason = (event_type == EventType::DealLost && rng.random::<f64>() < 0.8)
                    .then(|| LOST_REASONS[rng.random_range(0..LOST_REASONS.len())]);
                let final_amount =
                    (event_type == EventType::DealWon && rng.random::<f64>() < 0.3).then_some(amount * 0.9);
                out.push(Draft { deal: Some(deal), reason, amount: final_amount, ..Draft::new(event_type, at) });
                if rng.random::<f64>() < 0.05 {
                    out.push(Draft {
                        deal: Some(deal),
                        stage: Some(STAGES[2]),
                        ..Draft::new(EventType::DealStageChanged, at + 3_600)
                    });
                }
                return at;
            }
            stage = if roll < 0.2 && stage > 0 {
                stage - 1
            } else if roll < 0.25 {
                stage
            } else {
                (stage + 1).min(STAGES.len() - 1)
            };
            let update = rng.random::<f64>() < 0.2;
            if update {
                amount = (amount * rng.random_range(0.8..1.3) / 10.0).round() * 10.0;
            }
            out.push(Draft {
                deal: Some(deal),
                stage: Some(STAGES[stage]),
                amount: update.then_some(amount),
                ..Draft::new(EventType::DealStageChanged, at)
            });
        }
        at
    }

    /// Orders the way the BG/NBD model sees customers: each customer has its own dropout
    /// probability after a purchase (0.15 to 0.6, skewed low: about 4 orders on average) and its
    /// own mean time between orders (15 to 105 days), with exponential gaps of at least an hour.
    fn order_story(&mut self, rng: &mut Pcg64Mcg, customer: u64, mut at: i64, out: &mut Vec<Draft>) -> i64 {
        let dropout = 0.15 + 0.45 * rng.random::<f64>().powi(2);
        let orders = 1 + (rng.random::<f64>().ln() / (1.0 - dropout).ln()) as u32;
        let mean_gap_seconds = 86_400.0 * (15.0 + 90.0 * rng.random::<f64>());
        let usd = rng.random::<f64>() < 0.1;
        let basket = rng.random_range(20.0..400.0_f64);
        for number in 0..orders.min(30) {
            self.orders += 1;
            let kind = match (number, rng.random_range(0..10)) {
                (0, _) => Some("new"),
                (_, 0..=1) => Some("upsell"),
                (_, 2..=3) => Some("cross_sell"),
                (_, 4) => Some("renewal"),
                (_, 5) => None,
                _ => Some("new"),
            };
            let amount = (basket * rng.random_range(0.5..1.8) * 100.0).round() / 100.0;
            out.push(Draft {
                customer: Some(customer),
                order: Some(self.orders),
                amount: Some(amount),
                currency: usd.then_some("USD"),
                kind,
                ..Draft::new(EventType::OrderPlaced, at)
            });
            if number == 0 && rng.random::<f64>() < 0.1 {
                self.orders += 1;
                out.push(Draft {
                    customer: Some(customer),
                    order: Some(self.orders),
                    amount: Some(amount / 2.0),
                    ..Draft::new(EventType::OrderPlaced, at + 600)
                });
            }
            let gap = -mean_gap_seconds * (1.0 - rng.random::<f64>()).ln();
            at += (gap as i64).max(3_600);
        }
        if rng.random::<f64>() < 0.3 {
            let event_type = if rng.random::<f64>() < 0.75 {
                EventType::SubscriptionRenewed
            } else {
                EventType::SubscriptionCancelled
            };
            out.push(Draft { customer: Some(customer), ..Draft::new(event_type, at) });
        }
        at
    }

    fn ticket_story(&mut self, rng: &mut Pcg64Mcg, customer: u64, mut at: i64, out: &mut Vec<Draft>) {
        self.tickets += 1;
        let ticket = self.tickets;
        let channel = Some(["email", "phone", "chat"][rng.random_range(0..3)]);
        out.push(Draft {
            ticket: Some(ticket),
            customer: Some(customer),
            channel,
            ..Draft::new(EventType::TicketOpened, at)
        });
        let agent = rng.random_range(1..=AGENTS);
        for _ in 0..rng.random_range(0..=3) {
            at += rng.random_range(300..259_200);
            out.push(Draft {
                ticket: Some(ticket),
                owner: Some(agent),
                ..Draft::new(EventType::TicketAgentReplied, at)
            });
            if rng.random::<f64>() < 0.4 {
                at += rng.random_range(300..86_400);
                out.push(Draft { ticket: Some(ticket), ..Draft::new(EventType::TicketCustomerReplied, at) });
            }
        }
        if rng.random::<f64>() < 0.85 {
            at += rng.random_range(600..432_000);
            out.push(Draft { ticket: Some(ticket), ..Draft::new(EventType::TicketResolved, at) });
            if rng.random::<f64>() < 0.1 {
                at += rng.random_range(3_600..604_800);
                out.push(Draft { ticket: Some(ticket), ..Draft::new(EventType::TicketReopened, at) });
                if rng.random::<f64>() < 0.7 {
                    at += rng.random_range(600..259_200);
                    out.push(Draft { ticket: Some(ticket), ..Draft::new(EventType::TicketResolved, at) });
                }
            }
        }
    }

    /// Spend per category and CRM-user activity, one day per call, walking through the window.
    fn daily_activity(&mut self, rng: &mut Pcg64Mcg, out: &mut Vec<Draft>) {
        let day = WINDOW_START + (self.next_daily_at % WINDOW_SECONDS);
        self.next_daily_at += 86_400 * self.days_per_step as i64;
        for (category, scale) in [("acquisition", 900.0), ("retention", 300.0), ("crm", 120.0)] {
            let channel = (category == "acquisition").then(|| CHANNELS[rng.random_range(0..CHANNELS.len())]);
            let campaign = (category != "crm" && rng.random::<f64>() < 0.6).then(|| rng.random_range(1..=CAMPAIGNS));
            let amount = (scale * rng.random_range(0.5..1.5_f64) * 100.0).round() / 100.0;
            let at = day + rng.random_range(0..86_400);
            out.push(Draft {
                amount: Some(amount),
                category: Some(category),
                channel,
                campaign,
                ..Draft::new(EventType::SpendRecorded, at)
            });
        }
        for user in 1..=(REPS + AGENTS) {
            if rng.random::<f64>() < 0.2 {
                let at = day + rng.random_range(25_200..64_800);
                out.push(Draft { owner: Some(user), ..Draft::new(EventType::CrmUserActive, at) });
            }
        }
    }

    /// A record that ingest must reject (one reason per call, in rotation) or drop as a plain
    /// duplicate.
    fn dirty_record(&mut self, rng: &mut Pcg64Mcg, format: Format, id: &str, draft: &Draft) -> String {
        self.dirty_counter += 1;
        let mut bad = draft.clone();
        let mut bad_id = id.to_owned();
        match self.dirty_counter % 13 {
            0 => {
                return if format == Format::Csv {
                    "only,two".to_owned()
                } else {
                    "{\"event_id\": \"broken".to_owned()
                };
            }
            1 => bad_id.clear(),
            2 => bad.event_type = None,
            3 => return render_with_time(format, id, draft, "yesterday at noon"),
            4 => {
                bad.event_type = Some(EventType::OrderPlaced);
                bad.customer = bad.customer.or(Some(1));
                bad.amount = Some(10.0);
                bad.order = None;
            }
            5 => return render_with_amount(format, id, draft, "-12.5"),
            6 => {
                bad.event_type = Some(EventType::SurveyAnswered);
                bad.customer = bad.customer.or(Some(1));
                bad.survey = Some("nps");
                bad.score = Some(11);
            }
            7 => {
                bad.event_type = Some(EventType::SpendRecorded);
                bad.amount = Some(10.0);
                bad.category = Some("branding");
            }
            8 => bad.currency = Some("XYZ"),
            9 => {
                if let Some((earlier_id, earlier)) = &self.last_clean {
                    let mut conflicting = earlier.clone();
                    conflicting.at += 1;
                    return render(format, earlier_id, &conflicting, rng);
                }
                bad.currency = Some("XYZ");
            }
            10 => {
                if let Some((earlier_id, earlier)) = &self.last_clean {
                    return render(format, earlier_id, earlier, rng);
                }
            }
            11 => return render_with_time(format, id, draft, ""),
            _ => return render_with_type(format, id, draft, "deal_closed"),
        }
        render(format, &bad_id, &bad, rng)
    }
}

/// Renders an instant in one of the accepted forms, chosen so that every form appears.
fn render_time(at: i64, rng: &mut Pcg64Mcg, format: Format) -> TimeText {
    let instant = DateTime::from_timestamp(at, 0).unwrap_or_default();
    match rng.random_range(0..20) {
        0 if format == Format::Ndjson => TimeText::Millis(at * 1000),
        1 => {
            let plus_one = FixedOffset::east_opt(3_600)
                .map(|offset| instant.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Secs, false));
            TimeText::Text(plus_one.unwrap_or_else(|| instant.to_rfc3339_opts(SecondsFormat::Secs, true)))
        }
        2 => TimeText::Text(instant.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string()),
        _ => TimeText::Text(instant.to_rfc3339_opts(SecondsFormat::Secs, true)),
    }
}

enum TimeText {
    Text(String),
    Millis(i64),
}

fn render(format: Format, id: &str, draft: &Draft, rng: &mut Pcg64Mcg) -> String {
    let time = render_time(draft.at, rng, format);
    render_fields(format, id, draft, &time, None, None)
}

fn render_with_time(format: Format, id: &str, draft: &Draft, time: &str) -> String {
    render_fields(format, id, draft, &TimeText::Text(time.to_owned()), None, None)
}

fn render_with_amount(format: Format, id: &str, draft: &Draft, amount: &str) -> String {
    let time = TimeText::Text(
        DateTime::from_timestamp(draft.at, 0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    render_fields(format, id, draft, &time, Some(amount), None)
}

fn render_with_type(format: Format, id: &str, draft: &Draft, event_type: &str) -> String {
    let time = TimeText::Text(
        DateTime::from_timestamp(draft.at, 0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    render_fields(format, id, draft, &time, None, Some(event_type))
}

/// The CSV header of generated dumps (in a deliberately different order from the field table).
const CSV_COLUMNS: [&str; 18] = [
    "occurred_at",
    "event_type",
    "event_id",
    "customer_id",
    "deal_id",
    "order_id",
    "ticket_id",
    "campaign_id",
    "owner_id",
    "stage",
    "amount",
    "currency",
    "channel",
    "kind",
    "category",
    "survey",
    "score",
    "reason",
];

fn render_fields(
    format: Format,
    id: &str,
    draft: &Draft,
    time: &TimeText,
    amount_text: Option<&str>,
    type_text: Option<&str>,
) -> String {
    let event_type = type_text.map(str::to_owned).or(draft.event_type.map(|ty| ty.name().to_owned()));
    let amount = amount_text.map(str::to_owned).or(draft.amount.map(|amount| format!("{amount}")));
    let time_text = match time {
        TimeText::Text(text) => text.clone(),
        TimeText::Millis(millis) => millis.to_string(),
    };
    let values: [Option<String>; 18] = [
        Some(time_text),
        event_type,
        (!id.is_empty()).then(|| id.to_owned()),
        draft.customer.map(|id| format!("c{id}")),
        draft.deal.map(|id| format!("d{id}")),
        draft.order.map(|id| format!("o{id}")),
        draft.ticket.map(|id| format!("t{id}")),
        draft.campaign.map(|id| format!("cmp{id}")),
        draft.owner.map(|id| format!("u{id}")),
        draft.stage.map(str::to_owned),
        amount,
        draft.currency.map(str::to_owned),
        draft.channel.map(str::to_owned),
        draft.kind.map(str::to_owned),
        draft.category.map(str::to_owned),
        draft.survey.map(str::to_owned),
        draft.score.map(|score| score.to_string()),
        draft.reason.map(str::to_owned),
    ];
    let mut line = String::with_capacity(200);
    match format {
        Format::Csv => {
            for (position, value) in values.iter().enumerate() {
                if position > 0 {
                    line.push(',');
                }
                if let Some(value) = value {
                    line.push_str(value);
                }
            }
        }
        Format::Ndjson => {
            line.push('{');
            let mut first = true;
            for (name, value) in CSV_COLUMNS.iter().zip(&values) {
                let Some(value) = value else { continue };
                if !first {
                    line.push_str(", ");
                }
                first = false;
                let bare = matches!(*name, "amount" | "score")
                    || (*name == "occurred_at" && matches!(time, TimeText::Millis(_)));
                if bare && value.parse::<f64>().is_ok() {
                    let _ = write!(line, "\"{name}\": {value}");
                } else {
                    let _ = write!(line, "\"{name}\": \"{value}\"");
                }
            }
            line.push('}');
        }
    }
    line
}

/// One output file being written.
struct DumpWriter {
    path: PathBuf,
    format: Format,
    records: u64,
    sink: Sink,
}

/// The compressed or plain stream of one output file, finished explicitly so that write
/// errors at the end are reported.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(writer) => writer,
            Sink::Gzip(writer) => writer,
            Sink::Zstd(writer) => writer,
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut file = match self {
            Sink::Plain(writer) => writer,
            Sink::Gzip(writer) => writer.finish()?,
            Sink::Zstd(writer) => writer.finish()?,
        };
        file.flush()
    }
}

impl DumpWriter {
    /// Creates the file; fails when it exists (another process may have created it since the
    /// check at the start).
    fn create(path: &Path, format: Format, compression: Compression) -> Result<DumpWriter, IngestError> {
        let path = path.to_owned();
        let io_error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AlreadyExists => IngestError::GenerateWouldOverwrite { path: path.clone() },
            _ => IngestError::GenerateIo { path: path.clone(), source },
        };
        let file = BufWriter::with_capacity(1 << 20, File::create_new(&path).map_err(io_error)?);
        let mut sink = match compression {
            Compression::None => Sink::Plain(file),
            Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(file, flate2::Compression::fast())),
            Compression::Zstd => Sink::Zstd(zstd::stream::write::Encoder::new(file, 3).map_err(io_error)?),
        };
        if format == Format::Csv {
            writeln!(sink.writer(), "{}", CSV_COLUMNS.join(",")).map_err(io_error)?;
        }
        Ok(DumpWriter { path, format, records: 0, sink })
    }

    fn write_record(&mut self, record: &str) -> Result<(), IngestError> {
        self.records += 1;
        writeln!(self.sink.writer(), "{record}")
            .map_err(|source| IngestError::GenerateIo { path: self.path.clone(), source })
    }

    fn finish(self) -> Result<PathBuf, IngestError> {
        self.sink.finish().map_err(|source| IngestError::GenerateIo { path: self.path.clone(), source })?;
        Ok(self.path)
    }
}
