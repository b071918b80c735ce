//! Turns a task's stdout or stderr into log lines: split on `\n`, lossy UTF-8, one line capped in
//! size so a task printing without newlines cannot eat memory, secrets masked.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::{AttemptKey, Redactor};
use crate::logs::LogStore;
use crate::model::LogStream;

/// Longest line kept; the rest of it is dropped and the line marked.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reads one line into `buf` (without its newline), keeping at most `cap` bytes of it.
/// Returns `None` at end of input, else whether the line was cut.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut truncated = false;
    let mut read_any = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let (chunk, used) = match newline {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        r.consume(used);
        if newline.is_some() {
            return Ok(Some(truncated));
        }
    }
}

/// Text of a line as read: CRLF tolerated, invalid UTF-8 replaced, truncation marked.
pub fn to_text(buf: &[u8], truncated: bool) -> String {
    let bytes = buf.strip_suffix(b"\r").unwrap_or(buf);
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if truncated {
        text.push_str(&format!(" [line truncated at {} bytes]", MAX_LINE_BYTES));
    }
    text
}

/// Copies one output stream into the log store until it closes. For stderr, returns the last
/// non-empty line (redacted), which failure messages quote.
pub async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    key: &AttemptKey,
    logs: &LogStore,
    redactor: &Redactor,
) -> Option<String> {
    // Many tasks print nothing on a stream: look with a small buffer first, and make the
    // reader's 8 KiB one (zeroed when made) only when there is output.
    let mut first = [0u8; 512];
    let n = match reader.read(&mut first).await {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, ?stream, "task output stream failed");
            return None;
        }
    };
    if n == 0 {
        return None;
    }
    let mut reader = BufReader::new((&first[..n]).chain(reader));
    let mut buf = Vec::new();
    let mut last = None;
    loop {
        let truncated = match read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, ?stream, "task output stream failed");
                break;
            }
        };
        let text = to_text(&buf, truncated);
        let text = match redactor.redact(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(r) => r,
        };
        // Only stderr's last line is ever quoted; skip the copy for stdout.
        if stream == LogStream::Stderr && !text.trim().is_empty() {
            last = Some(text.clone());
        }
        logs.push(key, stream, text);
    }
    last
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn all_lines(input: &[u8], cap: usize) -> Vec<(String, bool)> {
        let mut r = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(t) = read_line(&mut r, &mut buf, cap).await.unwrap() {
            out.push((String::from_utf8_lossy(&buf).into_owned(), t));
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_unterminated_one() {
        let got = all_lines(b"a\n\nbc\nlast", 100).await;
        let want = [("a", false), ("", false), ("bc", false), ("last", false)];
        assert_eq!(got.len(), want.len());
        for ((g, gt), (w, wt)) in got.iter().zip(want) {
            assert_eq!((g.as_str(), *gt), (w, wt));
        }
        assert!(all_lines(b"", 100).await.is_empty());
    }

    #[tokio::test]
    async fn caps_long_lines_and_resumes_after_them() {
        let got = all_lines(b"0123456789\nok\n", 4).await;
        assert_eq!(got[0], ("0123".to_string(), true));
        assert_eq!(got[1], ("ok".to_string(), false));
        // Over a small internal buffer too.
        let long = vec![b'x'; 3 * MAX_LINE_BYTES];
        let mut r = BufReader::with_capacity(1000, &long[..]);
        let mut buf = Vec::new();
        let t = read_line(&mut r, &mut buf, MAX_LINE_BYTES).await.unwrap();
        assert_eq!((buf.len(), t), (MAX_LINE_BYTES, Some(true)));
    }

    #[test]
    fn text_is_lossy_and_marked() {
        assert_eq!(to_text(b"win\r", false), "win");
        assert_eq!(to_text(b"a\xffb", false), "a\u{fffd}b");
        assert_eq!(
            to_text(b"abc", true),
            format!("abc [line truncated at {MAX_LINE_BYTES} bytes]")
        );
    }
}
