//! The flat event record of events.md: its fields in the order of the field table, the event
//! types with the fields each requires, and the columns an accepted event has in the lake.

use std::fmt;

/// A field of the event record, in the order of events.md's field table. The order matters:
/// `missing_field` rejects name the first missing required field in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Unique id of the event; the dedup key.
    EventId,
    /// One of the 23 event types.
    EventType,
    /// RFC 3339 instant (or epoch milliseconds in NDJSON).
    OccurredAt,
    /// Lead / contact / account id.
    CustomerId,
    /// Opportunity id.
    DealId,
    /// Order id.
    OrderId,
    /// Support ticket id.
    TicketId,
    /// Marketing campaign id.
    CampaignId,
    /// The CRM user: sales rep, support agent.
    OwnerId,
    /// Pipeline stage name.
    Stage,
    /// Money, finite and >= 0.
    Amount,
    /// ISO 4217 code; null means the reporting currency.
    Currency,
    /// Lead source, ticket channel or spend channel.
    Channel,
    /// Order kind: `new`, `upsell`, `cross_sell`, `renewal`.
    Kind,
    /// Spend category: `acquisition`, `retention`, `crm`.
    Category,
    /// `nps`, `csat` or `ces`.
    Survey,
    /// Survey answer.
    Score,
    /// Lost reason of a deal.
    Reason,
}

impl Field {
    /// Every field, in the order of the field table.
    pub const ALL: [Field; 18] = [
        Field::EventId,
        Field::EventType,
        Field::OccurredAt,
        Field::CustomerId,
        Field::DealId,
        Field::OrderId,
        Field::TicketId,
        Field::CampaignId,
        Field::OwnerId,
        Field::Stage,
        Field::Amount,
        Field::Currency,
        Field::Channel,
        Field::Kind,
        Field::Category,
        Field::Survey,
        Field::Score,
        Field::Reason,
    ];

    /// The field's name in the dumps (CSV header, JSON key) and in the lake.
    pub const fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::EventType => "event_type",
            Field::OccurredAt => "occurred_at",
            Field::CustomerId => "customer_id",
            Field::DealId => "deal_id",
            Field::OrderId => "order_id",
            Field::TicketId => "ticket_id",
            Field::CampaignId => "campaign_id",
            Field::OwnerId => "owner_id",
            Field::Stage => "stage",
            Field::Amount => "amount",
            Field::Currency => "currency",
            Field::Channel => "channel",
            Field::Kind => "kind",
            Field::Category => "category",
            Field::Survey => "survey",
            Field::Score => "score",
            Field::Reason => "reason",
        }
    }

    /// The field named `name` in a dump, if it is one of the record's fields.
    pub fn from_name(name: &str) -> Option<Field> {
        // A match compares lengths first: ingest looks up every key of every record.
        Some(match name {
            "event_id" => Field::EventId,
            "event_type" => Field::EventType,
            "occurred_at" => Field::OccurredAt,
            "customer_id" => Field::CustomerId,
            "deal_id" => Field::DealId,
            "order_id" => Field::OrderId,
            "ticket_id" => Field::TicketId,
            "campaign_id" => Field::CampaignId,
            "owner_id" => Field::OwnerId,
            "stage" => Field::Stage,
            "amount" => Field::Amount,
            "currency" => Field::Currency,
            "channel" => Field::Channel,
            "kind" => Field::Kind,
            "category" => Field::Category,
            "survey" => Field::Survey,
            "score" => Field::Score,
            "reason" => Field::Reason,
            _ => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 23 event types of events.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    /// A (possibly anonymous) visitor id seen on the website.
    SiteVisited,
    /// A lead enters the CRM.
    LeadCreated,
    /// The lead was qualified.
    LeadQualified,
    /// A sales rep touched the lead.
    LeadContacted,
    /// A deal opens.
    DealCreated,
    /// The deal moved to `stage`.
    DealStageChanged,
    /// The deal closed won.
    DealWon,
    /// The deal closed lost.
    DealLost,
    /// A purchase.
    OrderPlaced,
    /// A contract came up for renewal and was renewed.
    SubscriptionRenewed,
    /// A contract came up for renewal and was cancelled.
    SubscriptionCancelled,
    /// A support ticket opens.
    TicketOpened,
    /// An agent answered the customer.
    TicketAgentReplied,
    /// The customer wrote again.
    TicketCustomerReplied,
    /// The ticket was solved.
    TicketResolved,
    /// A solved ticket was reopened.
    TicketReopened,
    /// A survey answer.
    SurveyAnswered,
    /// Money spent.
    SpendRecorded,
    /// Joined the email list.
    EmailSubscribed,
    /// Left the email list.
    EmailUnsubscribed,
    /// A campaign message was sent to the customer.
    CampaignSent,
    /// The customer responded to a campaign.
    CampaignResponded,
    /// A CRM user was active.
    CrmUserActive,
}

impl EventType {
    /// The type's place in [`EventType::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Every event type, in the order of events.md's type table.
    pub const ALL: [EventType; 23] = [
        EventType::SiteVisited,
        EventType::LeadCreated,
        EventType::LeadQualified,
        EventType::LeadContacted,
        EventType::DealCreated,
        EventType::DealStageChanged,
        EventType::DealWon,
        EventType::DealLost,
        EventType::OrderPlaced,
        EventType::SubscriptionRenewed,
        EventType::SubscriptionCancelled,
        EventType::TicketOpened,
        EventType::TicketAgentReplied,
        EventType::TicketCustomerReplied,
        EventType::TicketResolved,
        EventType::TicketReopened,
        EventType::SurveyAnswered,
        EventType::SpendRecorded,
        EventType::EmailSubscribed,
        EventType::EmailUnsubscribed,
        EventType::CampaignSent,
        EventType::CampaignResponded,
        EventType::CrmUserActive,
    ];

    /// The type's name as written in `event_type`.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::SiteVisited => "site_visited",
            EventType::LeadCreated => "lead_created",
            EventType::LeadQualified => "lead_qualified",
            EventType::LeadContacted => "lead_contacted",
            EventType::DealCreated => "deal_created",
            EventType::DealStageChanged => "deal_stage_changed",
            EventType::DealWon => "deal_won",
            EventType::DealLost => "deal_lost",
            EventType::OrderPlaced => "order_placed",
            EventType::SubscriptionRenewed => "subscription_renewed",
            EventType::SubscriptionCancelled => "subscription_cancelled",
            EventType::TicketOpened => "ticket_opened",
            EventType::TicketAgentReplied => "ticket_agent_replied",
            EventType::TicketCustomerReplied => "ticket_customer_replied",
            EventType::TicketResolved => "ticket_resolved",
            EventType::TicketReopened => "ticket_reopened",
            EventType::SurveyAnswered => "survey_answered",
            EventType::SpendRecorded => "spend_recorded",
            EventType::EmailSubscribed => "email_subscribed",
            EventType::EmailUnsubscribed => "email_unsubscribed",
            EventType::CampaignSent => "campaign_sent",
            EventType::CampaignResponded => "campaign_responded",
            EventType::CrmUserActive => "crm_user_active",
        }
    }

    /// The event type written `name`, if it is one of the 23.
    pub fn from_name(name: &str) -> Option<EventType> {
        // A match compares lengths first: ingest looks up the type of every record.
        Some(match name {
            "site_visited" => EventType::SiteVisited,
            "lead_created" => EventType::LeadCreated,
            "lead_qualified" => EventType::LeadQualified,
            "lead_contacted" => EventType::LeadContacted,
            "deal_created" => EventType::DealCreated,
            "deal_stage_changed" => EventType::DealStageChanged,
            "deal_won" => EventType::DealWon,
            "deal_lost" => EventType::DealLost,
            "order_placed" => EventType::OrderPlaced,
            "subscription_renewed" => EventType::SubscriptionRenewed,
            "subscription_cancelled" => EventType::SubscriptionCancelled,
            "ticket_opened" => EventType::TicketOpened,
            "ticket_agent_replied" => EventType::TicketAgentReplied,
            "ticket_customer_replied" => EventType::TicketCustomerReplied,
            "ticket_resolved" => EventType::TicketResolved,
            "ticket_reopened" => EventType::TicketReopened,
            "survey_answered" => EventType::SurveyAnswered,
            "spend_recorded" => EventType::SpendRecorded,
            "email_subscribed" => EventType::EmailSubscribed,
            "email_unsubscribed" => EventType::EmailUnsubscribed,
            "campaign_sent" => EventType::CampaignSent,
            "campaign_responded" => EventType::CampaignResponded,
            "crm_user_active" => EventType::CrmUserActive,
            _ => return None,
        })
    }

    /// The fields this type requires besides the three common ones, in field-table order.
    pub const fn required_fields(self) -> &'static [Field] {
        match self {
            EventType::SiteVisited
            | EventType::LeadCreated
            | EventType::LeadQualified
            | EventType::LeadContacted
            | EventType::SubscriptionRenewed
            | EventType::SubscriptionCancelled
            | EventType::EmailSubscribed
            | EventType::EmailUnsubscribed => &[Field::CustomerId],
            EventType::DealCreated => &[Field::CustomerId, Field::DealId],
            EventType::DealStageChanged => &[Field::DealId, Field::Stage],
            EventType::DealWon | EventType::DealLost => &[Field::DealId],
            EventType::OrderPlaced => &[Field::CustomerId, Field::OrderId, Field::Amount],
            EventType::TicketOpened => &[Field::CustomerId, Field::TicketId],
            EventType::TicketAgentReplied
            | EventType::TicketCustomerReplied
            | EventType::TicketResolved
            | EventType::TicketReopened => &[Field::TicketId],
            EventType::SurveyAnswered => &[Field::CustomerId, Field::Survey, Field::Score],
            EventType::SpendRecorded => &[Field::Amount, Field::Category],
            EventType::CampaignSent | EventType::CampaignResponded => &[Field::CustomerId, Field::CampaignId],
            EventType::CrmUserActive => &[Field::OwnerId],
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The physical type of a lake column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeType {
    /// UTF-8 string.
    Str,
    /// UTC instant in microseconds.
    Timestamp,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer.
    I64,
    /// 64-bit unsigned integer.
    U64,
}

/// A column of the event lake's Parquet files.
#[derive(Debug, Clone, Copy)]
pub struct LakeColumn {
    /// Column name.
    pub name: &'static str,
    /// Physical type.
    pub lake_type: LakeType,
}

/// The columns of an accepted event in the lake, in file order. `amount` is converted to the
/// reporting currency; `currency` keeps the code the dump gave (null: the reporting currency);
/// `content_hash` identifies the parsed content for deduplication across runs; `ingest_run`
/// names the run that added the event.
pub const LAKE_COLUMNS: [LakeColumn; 20] = [
    LakeColumn { name: "event_id", lake_type: LakeType::Str },
    LakeColumn { name: "event_type", lake_type: LakeType::Str },
    LakeColumn { name: "occurred_at", lake_type: LakeType::Timestamp },
    LakeColumn { name: "customer_id", lake_type: LakeType::Str },
    LakeColumn { name: "deal_id", lake_type: LakeType::Str },
    LakeColumn { name: "order_id", lake_type: LakeType::Str },
    LakeColumn { name: "ticket_id", lake_type: LakeType::Str },
    LakeColumn { name: "campaign_id", lake_type: LakeType::Str },
    LakeColumn { name: "owner_id", lake_type: LakeType::Str },
    LakeColumn { name: "stage", lake_type: LakeType::Str },
    LakeColumn { name: "amount", lake_type: LakeType::F64 },
    LakeColumn { name: "currency", lake_type: LakeType::Str },
    LakeColumn { name: "channel", lake_type: LakeType::Str },
    LakeColumn { name: "kind", lake_type: LakeType::Str },
    LakeColumn { name: "category", lake_type: LakeType::Str },
    LakeColumn { name: "survey", lake_type: LakeType::Str },
    LakeColumn { name: "score", lake_type: LakeType::I64 },
    LakeColumn { name: "reason", lake_type: LakeType::Str },
    LakeColumn { name: "content_hash", lake_type: LakeType::U64 },
    LakeColumn { name: "ingest_run", lake_type: LakeType::Str },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_types_index_is_its_place_in_all() {
        for (place, ty) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(ty.index(), place, "{ty:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for ty in EventType::ALL {
            assert_eq!(EventType::from_name(ty.name()), Some(ty));
        }
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        assert_eq!(EventType::from_name("deal_closed"), None);
    }

    #[test]
    fn required_fields_are_in_field_table_order() {
        for ty in EventType::ALL {
            let fields = ty.required_fields();
            assert!(fields.windows(2).all(|pair| pair[0] < pair[1]), "{ty}");
        }
    }
}
