//! Reads a server-sent event stream: `id:`/`event:`/`data:` fields, blank-line separated;
//! comments (heartbeats) are skipped.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::{ClientError, StreamItem};

pub struct EventStream {
    body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
    ended: bool,
}

impl EventStream {
    pub(super) fn new(resp: reqwest::Response) -> EventStream {
        EventStream {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next event or notice; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Result<StreamItem, ClientError>> {
        loop {
            if let Some(block) = self.take_block() {
                match parse_block(&block) {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.ended = true;
                    return Some(Err(ClientError::Connect {
                        url: e.url().map(|u| u.to_string()).unwrap_or_default(),
                        detail: format!("the event stream broke: {e}"),
                    }));
                }
                None => self.ended = true,
            }
        }
    }

    /// One complete block (up to a blank line), without it.
    fn take_block(&mut self) -> Option<String> {
        let text = &self.buf;
        let end = text.windows(2).position(|w| w == b"\n\n")?;
        let block = String::from_utf8_lossy(&text[..end]).replace('\r', "");
        self.buf.drain(..end + 2);
        Some(block)
    }
}

fn parse_block(block: &str) -> Option<Result<StreamItem, ClientError>> {
    let mut kind = None;
    let mut data = String::new();
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => kind = Some(value.to_string()),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    let protocol = |e: serde_json::Error| ClientError::Protocol {
        url: String::new(),
        detail: format!("an event that is not taskdeck's JSON: {e}"),
    };
    Some(match kind.as_deref() {
        None | Some("message") => serde_json::from_str(&data)
            .map(|e| StreamItem::Event(Box::new(e)))
            .map_err(protocol),
        Some(_) => serde_json::from_str(&data)
            .map(StreamItem::Notice)
            .map_err(protocol),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_events_notices_or_nothing() {
        let ev = r#"{"seq":3,"ts":1,"run":"r1","type":"run_paused"}"#;
        match parse_block(&format!("id: 3\ndata: {ev}")) {
            Some(Ok(StreamItem::Event(e))) => assert_eq!(e.seq, 3),
            other => panic!("{other:?}"),
        }
        let notice = r#"{"type":"lagged","detail":"behind","last_seq":9}"#;
        match parse_block(&format!("event: lagged\ndata: {notice}")) {
            Some(Ok(StreamItem::Notice(n))) => {
                assert_eq!((n.kind.as_str(), n.last_seq), ("lagged", 9))
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_block(":").is_none(), "a heartbeat is skipped");
        assert!(matches!(
            parse_block("data: {oops"),
            Some(Err(ClientError::Protocol { .. }))
        ));
    }
}
