//! A minimal QMP client: handshake, synchronous commands, events skipped.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// QMP failures.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be reached before the deadline.
    #[error("cannot connect to QMP socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU sent something that is not the JSON we expect.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered a command with an error.
    #[error("QMP command {command} failed: {message}")]
    Command { command: String, message: String },
}

/// A connected, capability-negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path`, retrying until `timeout`, and leaves capability negotiation mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(source) => {
                    return Err(QmpError::Connect {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected a QMP greeting, got {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                let message = err
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    message,
                });
            }
            return Err(QmpError::Protocol(format!("unexpected reply {reply}")));
        }
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Protocol("QEMU closed the QMP socket".to_string()));
        }
        serde_json::from_str(&line)
            .map_err(|e| QmpError::Protocol(format!("bad JSON {line:?}: {e}")))
    }
}
