//! Errors the user can act on: what went wrong, where, and what to do about it.
//!
//! Every failure that stops a run is an [`Error`]; `main` prints it and exits with code 2.
//! Modelled on cargo's messages: a one-line cause, then `--> location` and `help:` lines.

use std::fmt;

/// A failure that stops the run, with the place it happened and a hint for the user.
#[derive(Debug, Clone)]
pub struct Error {
    message: String,
    location: Option<String>,
    help: Option<String>,
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error with a plain-language cause.
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), location: None, help: None }
    }

    /// Names the file, object or field the error is about.
    pub fn at(mut self, location: impl fmt::Display) -> Self {
        self.location = Some(location.to_string());
        self
    }

    /// Tells the user what to do next.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The cause alone, without location or hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Cause and location on one line, for a gap's reason (the hint is the gap's to give).
    pub fn brief(&self) -> String {
        match &self.location {
            Some(location) => format!("{} at {location}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(location) = &self.location {
            write!(f, "\n  --> {location}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
