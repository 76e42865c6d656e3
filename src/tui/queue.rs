//! The dashboard's messages. Components never reach into each other or into the backend: they
//! push [`Event`]s onto the [`Queue`], and the [`Ui`](super::ui::Ui) routes them after each key
//! — requests to the runtime (which calls `App` off the UI path), toasts to the status line,
//! confirmations to a popup. Results come back as [`Reply`] values.

use crate::engine::app::segments::CountedSegment;
use crate::engine::app::snapshot::Snapshot;
use crate::engine::audience::Preview;
use crate::engine::campaign::{CampaignId, CommunicationLog, SendStatus};
use crate::engine::lead::{Lead, LeadId};
use crate::engine::segment::{Rule, Segment};
use chrono::{DateTime, Utc};
use std::collections::VecDeque;

/// A lead's newest messages to it and replies from it, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadHistory {
    pub logs: Vec<CommunicationLog>,
    pub replies: Vec<crate::engine::store::campaigns::Reply>,
}

/// An operator's action on a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    Run,
    Pause,
    Resume,
    Cancel,
}

impl CampaignAction {
    pub fn verb(self) -> &'static str {
        match self {
            CampaignAction::Run => "run",
            CampaignAction::Pause => "pause",
            CampaignAction::Resume => "resume",
            CampaignAction::Cancel => "cancel",
        }
    }
}

/// Work for the runtime: each becomes one `App` call in a spawned task.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Campaign {
        id: CampaignId,
        action: CampaignAction,
    },
    /// A campaign's newest messages, only those in `status` when given.
    CampaignLogs {
        id: CampaignId,
        status: Option<SendStatus>,
    },
    /// One page of leads; `seq` lets a newer search win over a slower older one. `count`: also
    /// count every match (once per search, not per page: a count reads the whole store).
    Leads {
        seq: u64,
        search: Option<String>,
        offset: usize,
        limit: usize,
        count: bool,
    },
    /// A lead's messages and replies.
    LeadHistory {
        id: LeadId,
    },
    Segments,
    Preview {
        seq: u64,
        rule: Rule,
    },
    SaveSegment {
        name: String,
        rule: Rule,
    },
}

/// A popup asking before an action that cannot be undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub title: String,
    pub question: String,
    /// Sent when the operator answers yes.
    pub request: Request,
}

/// What components push for the UI to route.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Request(Request),
    /// A line on the status bar (errors in the warning style).
    Toast {
        text: String,
        error: bool,
    },
    Confirm(Confirm),
}

/// The internal event queue (the model is gitui's `src/queue.rs`, without the shared cell:
/// components get `&mut Queue` while they handle a key).
#[derive(Debug, Default)]
pub struct Queue {
    events: VecDeque<Event>,
}

impl Queue {
    pub fn push(&mut self, event: Event) {
        self.events.push_back(event);
    }

    pub fn request(&mut self, request: Request) {
        self.push(Event::Request(request));
    }

    pub fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.push(Event::Toast { text: text.into(), error });
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Results coming back from the poller and the runtime (errors as display text).
#[derive(Debug, Clone)]
pub enum Reply {
    /// The poller's interval changed (it stretches on very large stores): how often a
    /// snapshot now comes, so a slower one is not called stale.
    PollEvery(std::time::Duration),
    /// A poll's outcome; `at` is when it was asked for.
    Snapshot {
        at: DateTime<Utc>,
        result: Result<Snapshot, String>,
    },
    Campaign {
        id: CampaignId,
        action: CampaignAction,
        result: Result<String, String>,
    },
    CampaignLogs {
        id: CampaignId,
        status: Option<SendStatus>,
        result: Result<Vec<CommunicationLog>, String>,
    },
    /// A page, and the number of matches when it was asked for.
    Leads {
        seq: u64,
        offset: usize,
        result: Result<(Vec<Lead>, Option<u64>), String>,
    },
    LeadHistory {
        id: LeadId,
        result: Result<LeadHistory, String>,
    },
    Segments(Result<Vec<CountedSegment>, String>),
    Preview {
        seq: u64,
        result: Result<Preview, String>,
    },
    SegmentSaved(Result<Segment, String>),
    /// A request's task died (a panic); shown on the status line.
    Failed(String),
}
