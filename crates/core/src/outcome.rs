//! How a task ended, and why an attempt failed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::id::AgentId;

/// The terminal state of an accepted task. Every accepted task ends in exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// An agent executed it.
    Completed {
        /// Which agent.
        agent: AgentId,
        /// What the agent returned.
        output: Bytes,
        /// Delivery attempts used (1 = first try).
        attempts: u32,
    },
    /// Agents tried and it failed for good.
    Failed {
        /// Why.
        reason: FailureReason,
        /// Delivery attempts used.
        attempts: u32,
    },
    /// No agent could take it.
    DeadLettered {
        /// Why.
        reason: DeadLetterReason,
        /// Delivery attempts used before giving up.
        attempts: u32,
    },
}

impl TaskOutcome {
    /// Which of the three terminal kinds this is.
    pub fn kind(&self) -> TerminalKind {
        match self {
            TaskOutcome::Completed { .. } => TerminalKind::Completed,
            TaskOutcome::Failed { .. } => TerminalKind::Failed,
            TaskOutcome::DeadLettered { .. } => TerminalKind::DeadLettered,
        }
    }

    /// Attempts used.
    pub fn attempts(&self) -> u32 {
        match self {
            TaskOutcome::Completed { attempts, .. }
            | TaskOutcome::Failed { attempts, .. }
            | TaskOutcome::DeadLettered { attempts, .. } => *attempts,
        }
    }

    /// True for [`TaskOutcome::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, TaskOutcome::Completed { .. })
    }
}

/// The three terminal states, without their details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TerminalKind {
    /// Executed.
    Completed,
    /// Failed after retries, or failed permanently.
    Failed,
    /// No agent could take it.
    DeadLettered,
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FailureReason {
    /// An agent said the task itself is bad; retrying elsewhere would not help.
    #[error("agent {agent} rejected the task permanently: {message}")]
    Permanent {
        /// The agent.
        agent: AgentId,
        /// Its message.
        message: String,
    },
    /// Every allowed attempt (including the fallback swarm) failed.
    #[error("retries exhausted; last attempt: {last}")]
    RetriesExhausted {
        /// The last attempt's error.
        last: AttemptError,
    },
    /// The node-wide retry budget refused another retry (retry-storm protection).
    #[error("retry budget exhausted; last attempt: {last}")]
    RetryBudgetExhausted {
        /// The last attempt's error.
        last: AttemptError,
    },
    /// An at-most-once task ([`Task::at_most_once`](crate::Task::at_most_once)) whose
    /// attempt may have run it (timeout, panic, agent or node lost mid-delivery): it is
    /// not delivered again, and whether it ran is unknown.
    #[error("may have run{}: {detail}", agent.as_ref().map(|a| format!(" on agent {a}")).unwrap_or_default())]
    MayHaveRun {
        /// The agent of the attempt, when known.
        agent: Option<AgentId>,
        /// What happened to the attempt.
        detail: String,
    },
    /// The routing machinery itself failed for this task repeatedly.
    #[error("internal routing failure: {0}")]
    Internal(String),
}

/// Why a task was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DeadLetterReason {
    /// No registered agent has all the required capabilities (in the swarm, if one was set).
    #[error("no agent has the required capabilities")]
    NoCapableAgent,
    /// Capable agents exist but none could take the task in time (circuit breakers open,
    /// bulkheads full, agents gone).
    #[error("no capable agent was available: {detail}")]
    NoAvailableAgent {
        /// What stood in the way.
        detail: String,
    },
    /// The node stopped before the task could finish.
    #[error("the node stopped before the task finished")]
    NodeStopped,
}

impl AttemptError {
    /// Whether the agent may have run the task in this failed attempt: it timed out,
    /// panicked or was lost. An agent's retryable error is its word that another attempt is
    /// safe; without an agent nothing ran.
    pub fn may_have_run(&self) -> bool {
        matches!(self, AttemptError::Timeout { .. } | AttemptError::Panicked { .. } | AttemptError::AgentLost { .. })
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AttemptError {
    /// The agent returned a retryable error.
    #[error("agent {agent} failed: {message}")]
    AgentError {
        /// The agent.
        agent: AgentId,
        /// Its message.
        message: String,
    },
    /// The agent did not answer within the attempt timeout.
    #[error("agent {agent} timed out after {after_ms} ms")]
    Timeout {
        /// The agent.
        agent: AgentId,
        /// The timeout.
        after_ms: u64,
    },
    /// The agent panicked while executing this task (it is restarted by its supervisor).
    #[error("agent {agent} panicked: {message}")]
    Panicked {
        /// The agent.
        agent: AgentId,
        /// The panic message.
        message: String,
    },
    /// The agent died (or was killed) with the task queued or running.
    #[error("agent {agent} was lost before answering")]
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
    /// No capable agent could be used for this attempt.
    #[error("no available agent: {detail}")]
    NoAgent {
        /// What stood in the way.
        detail: String,
    },
}
