//! Splitting a byte stream (a payload's stdout or stderr) into lines.
//!
//! [`LineBuf`] keeps the unfinished tail of the stream in a fixed buffer; a
//! line longer than the buffer is emitted in buffer-sized pieces. No allocation.

/// Longest line kept whole; longer lines are split.
pub const MAX_LINE: usize = 1024;

/// The unfinished line of one stream.
#[derive(Debug, Clone)]
pub struct LineBuf {
    buf: [u8; MAX_LINE],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf {
            buf: [0; MAX_LINE],
            len: 0,
        }
    }
}

impl LineBuf {
    /// Appends `data`, calling `emit` for each completed line (without `\n` or `\r`).
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.len;
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if i <= room => {
                    self.buf[self.len..self.len + i].copy_from_slice(&data[..i]);
                    self.len += i;
                    emit(strip_cr(&self.buf[..self.len]));
                    self.len = 0;
                    data = &data[i + 1..];
                }
                _ => {
                    let take = room.min(data.len());
                    self.buf[self.len..self.len + take].copy_from_slice(&data[..take]);
                    self.len += take;
                    data = &data[take..];
                    if self.len == MAX_LINE {
                        emit(&self.buf);
                        self.len = 0;
                    }
                }
            }
        }
    }

    /// Emits the unfinished line, if any (at end of stream).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.len > 0 {
            emit(strip_cr(&self.buf[..self.len]));
            self.len = 0;
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn run(chunks: &[&[u8]]) -> Vec<String> {
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        for c in chunks {
            lb.push(c, |l| out.push(String::from_utf8_lossy(l).into_owned()));
        }
        lb.flush(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn joins_split_lines_and_flushes_the_tail() {
        assert_eq!(run(&[b"ab", b"c\nde\r\n\nf"]), ["abc", "de", "", "f"]);
        assert!(run(&[b""]).is_empty());
    }

    #[test]
    fn long_lines_come_out_in_pieces() {
        let long = [b'x'; MAX_LINE + 10];
        let mut data = long.to_vec();
        data.extend_from_slice(b"\nok\n");
        let out = run(&[&data]);
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].len(), out[1].len(), out[2].as_str()),
            (MAX_LINE, 10, "ok")
        );
        // Exactly a buffer's worth followed by the newline: one full line, one empty.
        let mut exact = [b'y'; MAX_LINE].to_vec();
        exact.push(b'\n');
        assert_eq!(run(&[&exact]).len(), 1);
    }
}
