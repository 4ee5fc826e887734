//! [`TopN`]: the `n` lowest race keys seen so far, kept in order on the
//! stack while candidates are scored one by one.

/// Most answers a steered name may ask for.
pub const MAX_ANSWERS: usize = 8;

/// The `n` lowest race keys seen so far, in order, without allocating:
/// candidates are offered one by one as they are scored.
#[derive(Clone, Copy, Debug)]
pub struct TopN {
    keys: [f64; MAX_ANSWERS],
    idx: [usize; MAX_ANSWERS],
    want: usize,
    len: usize,
}

impl TopN {
    /// Keeps the `want` lowest keys (at most [`MAX_ANSWERS`]).
    pub fn new(want: usize) -> TopN {
        TopN {
            keys: [f64::INFINITY; MAX_ANSWERS],
            idx: [0; MAX_ANSWERS],
            want: want.min(MAX_ANSWERS),
            len: 0,
        }
    }

    /// Offers candidate `i` with race key `key`.
    #[inline]
    pub fn offer(&mut self, key: f64, i: usize) {
        if self.want == 0 {
            return;
        }
        // Partial insertion sort: `want` is 1..=8, so this beats sorting.
        let mut pos = if self.len < self.want {
            self.len += 1;
            self.len - 1
        } else if key < self.keys[self.want - 1] {
            self.want - 1
        } else {
            return;
        };
        while pos > 0 && self.keys[pos - 1] > key {
            self.keys[pos] = self.keys[pos - 1];
            self.idx[pos] = self.idx[pos - 1];
            pos -= 1;
        }
        self.keys[pos] = key;
        self.idx[pos] = i;
    }

    /// The chosen indices, best first.
    pub fn as_slice(&self) -> &[usize] {
        &self.idx[..self.len]
    }

    /// The worst key kept, once `want` keys were offered (before that,
    /// nothing may be ruled out).
    pub fn worst_key(&self) -> Option<f64> {
        (self.want > 0 && self.len == self.want).then(|| self.keys[self.want - 1])
    }
}
