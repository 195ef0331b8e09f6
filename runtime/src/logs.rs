//! Reading container logs in the CRI log format that containerd writes:
//! `2026-11-02T10:00:00.123456789Z stdout F the line`, where `P` marks a partial line
//! that the next entries of the same stream continue.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One full log line (partial entries joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the runtime read it (of its first part).
    pub time: SystemTime,
    /// The timestamp as written, for `--timestamps`.
    pub timestamp: String,
    /// stdout or stderr.
    pub stream: Stream,
    /// The line, without its newline.
    pub content: Vec<u8>,
}

/// Which lines to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<SystemTime>,
}

/// Errors reading logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log file could not be read.
    #[error("cannot read log {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a CRI log file. A file that does not exist yet is an empty log.
pub async fn read(path: &Path, opts: &LogOptions) -> Result<Vec<LogLine>, Error> {
    let data = match tokio::fs::read(path).await {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(select(parse(&data), opts))
}

/// Applies `since` and `tail_lines`.
pub fn select(lines: Vec<LogLine>, opts: &LogOptions) -> Vec<LogLine> {
    let mut lines: Vec<LogLine> = match opts.since {
        Some(since) => lines.into_iter().filter(|l| l.time >= since).collect(),
        None => lines,
    };
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// Parses a whole log; malformed entries are skipped.
pub fn parse(data: &[u8]) -> Vec<LogLine> {
    let mut out = Vec::new();
    // A partial line per stream, waiting for its end.
    let mut pending: [Option<LogLine>; 2] = [None, None];
    for raw in data.split(|b| *b == b'\n') {
        let Some((timestamp, stream, full, content)) = parse_entry(raw) else {
            continue;
        };
        let slot = &mut pending[stream as usize];
        let line = match slot.take() {
            Some(mut started) => {
                started.content.extend_from_slice(content);
                started
            }
            None => LogLine {
                time: parse_rfc3339(timestamp).unwrap_or(UNIX_EPOCH),
                timestamp: timestamp.to_string(),
                stream,
                content: content.to_vec(),
            },
        };
        if full {
            out.push(line);
        } else {
            *slot = Some(line);
        }
    }
    // A partial line at the end of the file is still shown.
    out.extend(pending.into_iter().flatten());
    out.sort_by_key(|l| l.time);
    out
}

/// Parses a log as it grows (for `follow`): feed it what was appended, get the full lines
/// that are complete so far. A partial (`P`) entry waits for the rest of its line.
#[derive(Debug, Default)]
pub struct Follower {
    /// Bytes after the last newline.
    buf: Vec<u8>,
    /// A partial line per stream.
    pending: [Option<LogLine>; 2],
}

impl Follower {
    /// Feeds appended bytes; returns the lines they complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<LogLine> {
        self.buf.extend_from_slice(data);
        let Some(end) = self.buf.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.buf.drain(..=end).collect();
        let mut out = Vec::new();
        for raw in complete.split(|b| *b == b'\n') {
            let Some((timestamp, stream, full, content)) = parse_entry(raw) else {
                continue;
            };
            let slot = &mut self.pending[stream as usize];
            let line = match slot.take() {
                Some(mut started) => {
                    started.content.extend_from_slice(content);
                    started
                }
                None => LogLine {
                    time: parse_rfc3339(timestamp).unwrap_or(UNIX_EPOCH),
                    timestamp: timestamp.to_string(),
                    stream,
                    content: content.to_vec(),
                },
            };
            if full {
                out.push(line);
            } else {
                *slot = Some(line);
            }
        }
        out
    }
}

fn parse_entry(raw: &[u8]) -> Option<(&str, Stream, bool, &[u8])> {
    let mut parts = raw.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some((timestamp, stream, full, parts.next().unwrap_or_default()))
}

/// Parses RFC 3339 timestamps as containerd writes them (`Z` or a `±hh:mm` offset).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut nanos: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let d = &frac[..digits.min(9)];
        nanos = d.parse::<i64>().ok()? * 10_i64.pow(9 - d.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos as u64))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps() {
        let t = parse_rfc3339("1970-01-02T00:00:01.5Z").expect("ts");
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
        let t = parse_rfc3339("2026-11-02T10:00:00.123456789+01:00").expect("ts");
        let z = parse_rfc3339("2026-11-02T09:00:00.123456789Z").expect("ts");
        assert_eq!(t, z);
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_800))
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn joins_partial_lines_per_stream() {
        let log = b"2026-01-01T00:00:01Z stdout P hel\n\
                    2026-01-01T00:00:02Z stderr F oops\n\
                    2026-01-01T00:00:03Z stdout F lo\n\
                    not a log line\n\
                    2026-01-01T00:00:04Z stdout F \n";
        let lines = parse(log);
        let text: Vec<(Stream, &[u8])> = lines
            .iter()
            .map(|l| (l.stream, l.content.as_slice()))
            .collect();
        assert_eq!(
            text,
            vec![
                (Stream::Stdout, &b"hello"[..]),
                (Stream::Stderr, &b"oops"[..]),
                (Stream::Stdout, &b""[..]),
            ]
        );
        assert_eq!(lines[0].timestamp, "2026-01-01T00:00:01Z");
    }

    #[test]
    fn follower_waits_for_whole_lines() {
        let mut f = Follower::default();
        assert!(f.push(b"2026-01-01T00:00:01Z stdout P hel").is_empty());
        let first = f.push(b"\n2026-01-01T00:00:02Z stdout F lo\n2026-01");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].content, b"hello");
        let rest = f.push(b"-01T00:00:03Z stderr F err\n");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].content, b"err");
        assert_eq!(rest[0].stream, Stream::Stderr);
    }

    #[test]
    fn follower_joins_partials_across_pushes() {
        let mut f = Follower::default();
        let mut lines = f.push(b"2026-01-01T00:00:01Z stdout P hel\n");
        assert!(lines.is_empty());
        lines = f.push(b"2026-01-01T00:00:02Z stdout F lo\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].content, b"hello");
        assert_eq!(lines[0].timestamp, "2026-01-01T00:00:01Z");
    }

    #[test]
    fn tail_and_since() {
        let log = b"2026-01-01T00:00:01Z stdout F a\n\
                    2026-01-01T00:00:02Z stdout F b\n\
                    2026-01-01T00:00:03Z stdout F c\n";
        let all = parse(log);
        let tail = select(
            all.clone(),
            &LogOptions {
                tail_lines: Some(2),
                since: None,
            },
        );
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[0].content, b"b");
        let since = select(
            all,
            &LogOptions {
                tail_lines: None,
                since: parse_rfc3339("2026-01-01T00:00:03Z"),
            },
        );
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].content, b"c");
    }
}
