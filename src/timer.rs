//! A hashed hierarchical timer wheel for the single-threaded event loop.
//!
//! The gateway keeps many deadlines at once (one per in-flight request, one idle timer per
//! backend, startup and shutdown grace periods) and most of them are cancelled or outlived
//! long before they fire. A wheel makes both `insert` and `cancel` O(1) with no allocation
//! once its slab has warmed up, where a binary heap would pay O(log n) for each and could
//! not cancel without tombstones.
//!
//! Deadlines that keep moving (an idle timer that every message pushes back) are not
//! re-armed on every change: the caller lets the old entry fire, compares against the real
//! last-activity time, and inserts a fresh entry if the deadline has moved on. That keeps the
//! hot path free of wheel traffic, and is why a fired entry is cheap.
//!
//! Layout, in the style of tokio's runtime wheel: time is counted in 1 ms ticks from an
//! origin; there are 6 levels of 64 slots, a slot at level `L` spanning `64^L` ticks. An
//! entry's level is chosen from the highest bit in which its deadline tick differs from the
//! wheel's current tick, so every entry on a lower level is due before every entry on a
//! higher level, and each slot holds entries of a single absolute time range. As time
//! advances, a higher-level slot whose start has been reached is emptied and its entries are
//! re-placed on lower levels ("cascading"); each entry cascades at most 5 times.
//!
//! The wheel never reads the clock: `poll` and `insert` are driven by instants the caller
//! passes in, which keeps it deterministic and testable.

use std::fmt;
use std::time::{Duration, Instant};

/// Number of levels in the wheel.
const LEVELS: usize = 6;
/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level; 64 so that a level's occupancy fits one `u64` bitmap.
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Bit position of the top level's slot digit.
const TOP_SHIFT: u32 = SLOT_BITS * (LEVELS as u32 - 1);
/// How far ahead of the current tick an entry may be placed: 63 top-level slots, about 782
/// days. Keeping placements strictly less than one full top-level rotation ahead means the
/// top level's slots never hold entries from two different rotations, so "first occupied
/// slot" is always also "earliest".
const HORIZON: u64 = SLOT_MASK << TOP_SHIFT;
/// Ticks saturate here (about 146 million years) so that tick arithmetic, including
/// `elapsed + HORIZON`, can never overflow.
const TICK_LIMIT: u64 = 1 << 62;
/// List index of the ready list: entries already due but not yet returned by `poll`.
const READY: usize = LEVELS * SLOTS;
/// Slot lists plus the ready list.
const LISTS: usize = READY + 1;
/// Null link for the intrusive lists and the free list.
const NIL: usize = usize::MAX;

/// Identifies one `insert` on the [`TimerWheel`] that returned it.
///
/// A handle stays valid until its entry fires or is cancelled; after that it is stale and
/// [`TimerWheel::cancel`] refuses it, even if the wheel's storage slot has since been reused
/// for another timer (the generation counter differs). Handles are only meaningful for the
/// wheel that issued them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerHandle {
    index: usize,
    generation: u64,
}

struct Entry<T> {
    /// `None` while the slab slot is on the free list.
    value: Option<T>,
    /// Bumped each time the slab slot is freed, so old handles stop matching.
    generation: u64,
    /// The caller's deadline in ticks, rounded up.
    deadline_tick: u64,
    /// The tick the entry is currently placed at: `deadline_tick`, unless that lies beyond
    /// the horizon, in which case the entry is re-placed when this tick is reached.
    slot_tick: u64,
    /// Kept only to answer `next_deadline` should `origin + slot_tick` not be representable.
    deadline: Instant,
    prev: usize,
    /// Next entry in the same list, or the next free slab slot.
    next: usize,
    /// Which list (slot or ready) the entry is linked into, so `cancel` can unlink it.
    list: usize,
}

/// A hashed hierarchical timer wheel with 1 ms resolution, holding values of type `T`.
///
/// Contract:
/// * An entry fires on the first [`poll`](Self::poll) whose `now` is at or past its deadline
///   rounded up to the next whole millisecond since the origin; it never fires earlier than
///   its deadline, and fires at most 1 ms (plus the caller's polling latency) late.
/// * Instants before the origin count as the origin.
/// * Deadlines more than about 782 days (63 * 2^30 ms) ahead of the wheel's current time are
///   clamped to that horizon for placement: [`next_deadline`](Self::next_deadline) then
///   reports the horizon, and a `poll` there re-places the entry instead of firing it, so it
///   still fires at its real deadline.
/// * Time never goes backwards: a `now` earlier than one already passed to `poll` is treated
///   as that earlier maximum.
///
/// Memory: the slab grows to the peak number of pending entries and is reused afterwards.
pub struct TimerWheel<T> {
    origin: Instant,
    /// Every entry with a deadline tick at or before this has been moved to the ready list.
    elapsed: u64,
    entries: Vec<Entry<T>>,
    free_head: usize,
    /// Head of each intrusive doubly linked list: `level * SLOTS + slot`, then `READY`.
    heads: [usize; LISTS],
    /// Bit `s` of `occupied[L]` is set iff slot `s` of level `L` is non-empty.
    occupied: [u64; LEVELS],
    len: usize,
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("origin", &self.origin)
            .field("elapsed_ms", &self.elapsed)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose tick 0 is `origin`. Does not allocate slab storage until
    /// the first insert.
    pub fn new(origin: Instant) -> Self {
        TimerWheel {
            origin,
            elapsed: 0,
            entries: Vec::new(),
            free_head: NIL,
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            len: 0,
        }
    }

    /// Number of pending entries (inserted, not yet returned by `poll`, not cancelled).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True iff no entries are pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `value` to be returned by `poll` once `deadline` has passed, in O(1).
    ///
    /// A deadline at or before the wheel's current time (the latest `now` given to `poll`,
    /// at millisecond resolution) fires on the next `poll`. Deadlines beyond the wheel's
    /// range (about 782 days ahead) are clamped for placement as described on
    /// [`TimerWheel`], but never fire early. Allocates only when the slab has no free slot.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerHandle {
        let deadline_tick = self.ceil_tick(deadline);
        let index = self.alloc(deadline, deadline_tick, value);
        self.len += 1;
        self.place(index);
        TimerHandle {
            index,
            generation: self.entries[index].generation,
        }
    }

    /// Removes the entry `handle` refers to, in O(1), returning its value if it was still
    /// pending. Returns `None` for a stale handle (its entry already fired or was
    /// cancelled), and in that case touches no other entry even if the storage was reused.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let entry = self.entries.get(handle.index)?;
        if entry.generation != handle.generation || entry.value.is_none() {
            return None;
        }
        self.unlink(handle.index);
        self.release(handle.index)
    }

    /// Returns one entry whose deadline is at or before `now` (at 1 ms resolution, see
    /// [`TimerWheel`]), or `None` when there is none. Call repeatedly until `None` to drain
    /// everything due.
    ///
    /// Entries come out earliest first, except that entries in the same millisecond come
    /// out in no particular order, and entries inserted with a deadline the wheel had
    /// already passed come out (in no particular order) before anything still in the
    /// wheel. Advancing moves higher-level entries down as their slots are reached;
    /// amortised cost is O(1) per entry plus O(levels) per call.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        let now_tick = self.floor_tick(now).max(self.elapsed);
        loop {
            if let Some(value) = self.pop_ready() {
                return Some(value);
            }
            match self.next_slot() {
                Some((level, slot, start)) if start <= now_tick => {
                    if level == LEVELS - 1 && now_tick - self.elapsed > HORIZON {
                        self.fast_forward(now_tick);
                    } else {
                        self.elapsed = start;
                        self.process_slot(level, slot);
                    }
                }
                _ => {
                    // Nothing is placed at or before `now_tick`, so every placement stays
                    // valid relative to the advanced current tick.
                    self.elapsed = now_tick;
                    return None;
                }
            }
        }
    }

    /// The earliest pending deadline, rounded up to a whole millisecond since the origin,
    /// or `None` when the wheel is empty.
    ///
    /// Exact: a `poll` at the returned instant returns at least one entry, and no entry is
    /// due before it, so an event loop can sleep until it without waking early. The only
    /// exception is an entry beyond the wheel's range, for which this reports the horizon
    /// (about 782 days ahead) and a `poll` there returns nothing. The result may lie in the
    /// past when entries are already due. Costs O(levels + entries in one slot).
    pub fn next_deadline(&self) -> Option<Instant> {
        let list = if self.heads[READY] != NIL {
            READY
        } else {
            let (level, slot, _) = self.next_slot()?;
            level * SLOTS + slot
        };
        let mut best = self.heads[list];
        let mut index = best;
        while index != NIL {
            let entry = &self.entries[index];
            if entry.slot_tick < self.entries[best].slot_tick {
                best = index;
            }
            index = entry.next;
        }
        let entry = self.entries.get(best)?;
        Some(
            self.origin
                .checked_add(Duration::from_millis(entry.slot_tick))
                .unwrap_or(entry.deadline),
        )
    }

    /// Rounds up, so that an entry is never considered due before its deadline.
    fn ceil_tick(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        let mut ms = since.as_millis();
        if since.subsec_nanos() % 1_000_000 != 0 {
            ms += 1;
        }
        u64::try_from(ms).unwrap_or(u64::MAX).min(TICK_LIMIT)
    }

    /// Rounds down, so that a tick only counts as reached once all of it has passed.
    fn floor_tick(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).min(TICK_LIMIT)
    }

    fn alloc(&mut self, deadline: Instant, deadline_tick: u64, value: T) -> usize {
        if let Some(entry) = self.entries.get_mut(self.free_head) {
            let index = self.free_head;
            self.free_head = entry.next;
            entry.value = Some(value);
            entry.deadline_tick = deadline_tick;
            entry.slot_tick = deadline_tick;
            entry.deadline = deadline;
            entry.prev = NIL;
            entry.next = NIL;
            index
        } else {
            self.entries.push(Entry {
                value: Some(value),
                generation: 0,
                deadline_tick,
                slot_tick: deadline_tick,
                deadline,
                prev: NIL,
                next: NIL,
                list: READY,
            });
            self.entries.len() - 1
        }
    }

    /// Takes the value out of an already unlinked entry and returns its slot to the free
    /// list.
    fn release(&mut self, index: usize) -> Option<T> {
        let entry = &mut self.entries[index];
        let value = entry.value.take();
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free_head;
        entry.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        value
    }

    /// Links an unlinked entry into the list matching its deadline relative to the current
    /// tick.
    fn place(&mut self, index: usize) {
        let deadline_tick = self.entries[index].deadline_tick;
        if deadline_tick <= self.elapsed {
            self.entries[index].slot_tick = deadline_tick;
            self.push(READY, index);
            return;
        }
        let slot_tick = deadline_tick.min(self.elapsed + HORIZON);
        let level = level_for(self.elapsed, slot_tick);
        let slot = ((slot_tick >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize;
        self.entries[index].slot_tick = slot_tick;
        self.push(level * SLOTS + slot, index);
        self.occupied[level] |= 1 << slot;
    }

    fn push(&mut self, list: usize, index: usize) {
        let head = self.heads[list];
        if head != NIL {
            self.entries[head].prev = index;
        }
        let entry = &mut self.entries[index];
        entry.prev = NIL;
        entry.next = head;
        entry.list = list;
        self.heads[list] = index;
    }

    fn unlink(&mut self, index: usize) {
        let (prev, next, list) = {
            let entry = &self.entries[index];
            (entry.prev, entry.next, entry.list)
        };
        if prev == NIL {
            self.heads[list] = next;
        } else {
            self.entries[prev].next = next;
        }
        if next != NIL {
            self.entries[next].prev = prev;
        }
        if list < READY && self.heads[list] == NIL {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    fn pop_ready(&mut self) -> Option<T> {
        let index = self.heads[READY];
        if index == NIL {
            return None;
        }
        self.unlink(index);
        self.release(index)
    }

    /// The first occupied slot after the current position on the lowest occupied level, as
    /// `(level, slot, start tick)`. Lower levels are always earlier (see the module doc), so
    /// this is the earliest slot in the wheel.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let shift = SLOT_BITS * level as u32;
        let current = (self.elapsed >> shift) & SLOT_MASK;
        // Only the top level can wrap around, but treating all levels as rings costs
        // nothing and keeps one code path.
        let rotated = self.occupied[level].rotate_right(((current + 1) & SLOT_MASK) as u32);
        let distance = u64::from(rotated.trailing_zeros()) + 1;
        let slot = ((current + distance) & SLOT_MASK) as usize;
        let start = ((self.elapsed >> shift) + distance) << shift;
        Some((level, slot, start))
    }

    /// Empties a slot whose start has just become the current tick, re-placing each entry:
    /// due ones go to the ready list, the rest to lower levels (or, for entries beyond the
    /// horizon, further out).
    fn process_slot(&mut self, level: usize, slot: usize) {
        let list = level * SLOTS + slot;
        let mut index = self.heads[list];
        self.heads[list] = NIL;
        self.occupied[level] &= !(1 << slot);
        while index != NIL {
            let next = self.entries[index].next;
            self.place(index);
            index = next;
        }
    }

    /// Jumps straight to the earliest deadline (or `now_tick`, if sooner) when time has moved
    /// past the whole horizon and only top-level entries remain. Stepping slot by slot would
    /// re-place beyond-horizon entries once per horizon crossed, which for an absurd jump is
    /// tens of millions of rounds; here each remaining entry is re-placed once.
    ///
    /// Sound because the lower levels and the ready list are empty, so every entry gets
    /// re-placed relative to the new current tick, and none is due before it.
    fn fast_forward(&mut self, now_tick: u64) {
        let top = LEVELS - 1;
        let mut target = now_tick;
        let mut bits = self.occupied[top];
        while bits != 0 {
            let mut index = self.heads[top * SLOTS + bits.trailing_zeros() as usize];
            while index != NIL {
                let entry = &self.entries[index];
                target = target.min(entry.deadline_tick);
                index = entry.next;
            }
            bits &= bits - 1;
        }
        self.elapsed = self.elapsed.max(target);
        let mut bits = self.occupied[top];
        while bits != 0 {
            // An entry re-placed into a slot not yet visited is re-placed again when that
            // slot is, to the same place, so this still ends.
            self.process_slot(top, bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

/// The level whose slot digit holds the highest bit where `when` differs from `elapsed`,
/// capped at the top level. `when > elapsed`, so they differ somewhere.
fn level_for(elapsed: u64, when: u64) -> usize {
    let highest_bit = 63u32.saturating_sub((elapsed ^ when).leading_zeros());
    ((highest_bit / SLOT_BITS) as usize).min(LEVELS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap, HashSet};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;

    /// Deterministic xorshift64* so the randomized tests need no extra crates and replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            if n == 0 {
                0
            } else {
                self.next() % n
            }
        }
    }

    #[test]
    fn empty_wheel() {
        let origin = Instant::now();
        let mut wheel: TimerWheel<u32> = TimerWheel::new(origin);
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
        assert_eq!(wheel.poll(origin + ms(1_000_000)), None);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn fires_at_exact_deadline_not_before() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let deadline = origin + ms(5);
        wheel.insert(deadline, "a");
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_deadline(), Some(deadline));
        assert_eq!(wheel.poll(origin + ms(4)), None);
        assert_eq!(wheel.poll(deadline - Duration::from_nanos(1)), None);
        assert_eq!(wheel.poll(deadline), Some("a"));
        assert_eq!(wheel.poll(deadline), None);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn sub_millisecond_deadline_rounds_up() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let deadline = origin + Duration::from_micros(5_300);
        wheel.insert(deadline, 1);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(6)));
        // Past the deadline but inside the same millisecond: not yet, by resolution.
        assert_eq!(wheel.poll(origin + Duration::from_micros(5_900)), None);
        assert_eq!(wheel.poll(origin + ms(6)), Some(1));
    }

    #[test]
    fn past_deadline_fires_at_once() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        assert_eq!(wheel.poll(origin + ms(1000)), None);
        wheel.insert(origin + ms(10), 1);
        wheel.insert(origin + ms(1000), 2);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(10)));
        let mut got = vec![wheel.poll(origin + ms(1000)), wheel.poll(origin + ms(1000))];
        got.sort();
        assert_eq!(got, vec![Some(1), Some(2)]);
        assert_eq!(wheel.poll(origin + ms(1000)), None);
    }

    #[test]
    fn instant_before_origin_is_tick_zero() {
        let base = Instant::now();
        let origin = base + ms(10_000);
        let mut wheel = TimerWheel::new(origin);
        wheel.insert(base, 7);
        assert_eq!(wheel.next_deadline(), Some(origin));
        assert_eq!(wheel.poll(base), Some(7));
        assert_eq!(wheel.poll(base), None);
    }

    #[test]
    fn cancel_before_fire() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let a = wheel.insert(origin + ms(100), 'a');
        let b = wheel.insert(origin + ms(200), 'b');
        assert_eq!(wheel.cancel(a), Some('a'));
        assert_eq!(wheel.cancel(a), None);
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(200)));
        assert_eq!(wheel.poll(origin + ms(150)), None);
        assert_eq!(wheel.poll(origin + ms(300)), Some('b'));
        assert_eq!(wheel.cancel(b), None, "fired handle is stale");
        assert!(wheel.is_empty());
    }

    #[test]
    fn cancel_ready_entry() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let a = wheel.insert(origin, 1);
        let b = wheel.insert(origin, 2);
        assert_eq!(wheel.cancel(a), Some(1));
        assert_eq!(wheel.poll(origin), Some(2));
        assert_eq!(wheel.cancel(b), None);
    }

    #[test]
    fn stale_handle_after_reuse_is_refused() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let old = wheel.insert(origin + ms(10), 1);
        assert_eq!(wheel.cancel(old), Some(1));
        let new = wheel.insert(origin + ms(20), 2);
        assert_eq!(new.index, old.index, "slab slot is reused");
        assert_ne!(new, old);
        assert_eq!(wheel.cancel(old), None);
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.poll(origin + ms(20)), Some(2));
        // Fired, reused again: the fired handle must not hit the newcomer either.
        let newer = wheel.insert(origin + ms(30), 3);
        assert_eq!(newer.index, old.index);
        assert_eq!(wheel.cancel(new), None);
        assert_eq!(wheel.cancel(newer), Some(3));
    }

    #[test]
    fn handle_out_of_range_is_refused() {
        let origin = Instant::now();
        let mut wheel: TimerWheel<u8> = TimerWheel::new(origin);
        let bogus = TimerHandle {
            index: 12345,
            generation: 0,
        };
        assert_eq!(wheel.cancel(bogus), None);
        let real = wheel.insert(origin, 1);
        let bogus = TimerHandle {
            index: real.index,
            generation: real.generation + 1,
        };
        assert_eq!(wheel.cancel(bogus), None);
        assert_eq!(wheel.len(), 1);
    }

    #[test]
    fn entries_on_every_level_fire_exactly_in_order() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        // One or more per level: 64^0 .. 64^5 ms spans, ~1 hour, ~1 day, ~2 weeks, ~2 years.
        let offsets = [
            1,
            63,
            64,
            70,
            4_095,
            5_000,
            300_000,
            HOUR,
            HOUR + 1,
            DAY,
            DAY - 1,
            20 * DAY,
            700 * DAY,
        ];
        // Insert in a scrambled order so insertion order cannot explain the result.
        for (i, &off) in offsets.iter().enumerate().rev() {
            wheel.insert(origin + ms(off), i);
        }
        let mut sorted: Vec<(u64, usize)> =
            offsets.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        sorted.sort();
        for &(off, i) in &sorted {
            let due = origin + ms(off);
            assert_eq!(wheel.next_deadline(), Some(due), "offset {off}");
            assert_eq!(
                wheel.poll(due - Duration::from_nanos(1)),
                None,
                "offset {off}"
            );
            assert_eq!(wheel.next_deadline(), Some(due), "offset {off}");
            assert_eq!(wheel.poll(due), Some(i), "offset {off}");
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn next_deadline_exact_with_nonzero_current_tick() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let start = 123_456_789;
        assert_eq!(wheel.poll(origin + ms(start)), None);
        // The later entry shares a higher-level slot with an earlier one; the earlier one's
        // deadline is not the slot start.
        wheel.insert(origin + ms(start + HOUR + 17), 'b');
        wheel.insert(origin + ms(start + HOUR + 5), 'a');
        wheel.insert(origin + ms(start + 3 * DAY), 'c');
        assert_eq!(wheel.next_deadline(), Some(origin + ms(start + HOUR + 5)));
        assert_eq!(wheel.poll(origin + ms(start + HOUR + 4)), None);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(start + HOUR + 5)));
        assert_eq!(wheel.poll(origin + ms(start + HOUR + 5)), Some('a'));
        assert_eq!(wheel.next_deadline(), Some(origin + ms(start + HOUR + 17)));
        assert_eq!(wheel.poll(origin + ms(start + 2 * DAY)), Some('b'));
        assert_eq!(wheel.next_deadline(), Some(origin + ms(start + 3 * DAY)));
        assert_eq!(wheel.poll(origin + ms(start + 2 * DAY)), None);
        assert_eq!(wheel.poll(origin + ms(start + 3 * DAY)), Some('c'));
    }

    #[test]
    fn many_timers_in_same_tick() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let due = origin + ms(HOUR + 7);
        let handles: Vec<_> = (0..1000).map(|i| wheel.insert(due, i)).collect();
        for h in handles.iter().step_by(10) {
            assert!(wheel.cancel(*h).is_some());
        }
        assert_eq!(wheel.next_deadline(), Some(due));
        assert_eq!(wheel.poll(due - ms(1)), None);
        let mut got = Vec::new();
        while let Some(v) = wheel.poll(due) {
            got.push(v);
        }
        got.sort();
        let want: Vec<_> = (0..1000).filter(|i| i % 10 != 0).collect();
        assert_eq!(got, want);
        assert!(wheel.is_empty());
    }

    #[test]
    fn deadline_beyond_range_is_clamped_but_not_early() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let far = origin + ms(1000 * DAY);
        wheel.insert(far, "far");
        let horizon = origin + ms(HORIZON);
        assert_eq!(wheel.next_deadline(), Some(horizon));
        assert_eq!(wheel.poll(horizon), None);
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.next_deadline(), Some(far));
        assert_eq!(wheel.poll(far - ms(1)), None);
        assert_eq!(wheel.poll(far), Some("far"));
    }

    #[test]
    fn huge_jump_past_the_horizon_keeps_order() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let offsets = [
            100_000 * DAY,
            1000 * DAY,
            5000 * DAY,
            5000 * DAY + 1,
            3 * DAY,
        ];
        for (i, &off) in offsets.iter().enumerate() {
            wheel.insert(origin + ms(off), i);
        }
        let late = origin + ms(1_000_000 * DAY);
        let got: Vec<_> = std::iter::from_fn(|| wheel.poll(late)).collect();
        assert_eq!(got, vec![4, 1, 2, 3, 0]);
        assert!(wheel.is_empty());
        // Entries beyond the horizon from a far-advanced wheel still fire on time.
        wheel.insert(late + ms(2000 * DAY), 9);
        wheel.insert(late + ms(1), 8);
        assert_eq!(wheel.next_deadline(), Some(late + ms(1)));
        assert_eq!(wheel.poll(late + ms(1)), Some(8));
        assert_eq!(wheel.poll(late + ms(2000 * DAY - 1)), None);
        assert_eq!(wheel.poll(late + ms(2000 * DAY)), Some(9));
    }

    #[test]
    fn absurd_instants_do_not_panic() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let huge = Duration::from_secs(u64::MAX / 4);
        if let Some(far) = origin.checked_add(huge) {
            wheel.insert(far, 1);
            assert!(wheel.next_deadline().is_some());
            assert_eq!(wheel.poll(origin + ms(DAY)), None);
            assert_eq!(wheel.poll(far), Some(1));
            wheel.insert(far, 2);
            assert_eq!(wheel.poll(far), Some(2));
            // Time going backwards is ignored rather than trusted.
            wheel.insert(origin, 3);
            assert_eq!(wheel.poll(origin), Some(3));
        }
    }

    /// Ceil of `t` in whole ms since origin, as the oracle's idea of when an entry is due.
    fn oracle_tick(origin: Instant, t: Instant) -> u64 {
        let d = t.saturating_duration_since(origin);
        let mut ms = d.as_millis() as u64;
        if d.subsec_nanos() % 1_000_000 != 0 {
            ms += 1;
        }
        ms
    }

    #[test]
    fn randomized_against_oracle() {
        let origin = Instant::now();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut wheel = TimerWheel::new(origin);
        // Oracle: pending (tick, id) ordered by tick, and id -> tick.
        let mut by_tick: BTreeSet<(u64, u64)> = BTreeSet::new();
        let mut pending: HashMap<u64, u64> = HashMap::new();
        let mut issued: Vec<(TimerHandle, u64)> = Vec::new();
        let mut now_us: u64 = 0;
        let mut next_id = 0u64;
        let mut fired_total = 0usize;
        let mut cancelled_total = 0usize;
        let mut stale_total = 0usize;
        let mut max_level_seen = 0usize;

        for step in 0..20_000 {
            let now = origin + Duration::from_micros(now_us);
            match rng.below(100) {
                0..=49 => {
                    // Offsets on several scales up to 3 days, with sub-ms parts.
                    let scale_us = match rng.below(6) {
                        0 => 0,
                        1 => 2_000,
                        2 => 1_000_000,
                        3 => 60_000_000,
                        4 => HOUR * 1000,
                        _ => 3 * DAY * 1000,
                    };
                    let offset_us = if rng.below(4) == 0 {
                        rng.below(scale_us / 1000 + 1) * 1000
                    } else {
                        rng.below(scale_us + 1)
                    };
                    let deadline = now + Duration::from_micros(offset_us);
                    let id = next_id;
                    next_id += 1;
                    let handle = wheel.insert(deadline, id);
                    let tick = oracle_tick(origin, deadline);
                    max_level_seen =
                        max_level_seen.max(level_for(wheel.elapsed, tick.max(wheel.elapsed + 1)));
                    by_tick.insert((tick, id));
                    pending.insert(id, tick);
                    issued.push((handle, id));
                }
                50..=69 => {
                    if issued.is_empty() {
                        continue;
                    }
                    // Mostly recent handles, which are likely still pending; the rest are
                    // mostly stale, which exercises the generation check.
                    let len = issued.len() as u64;
                    let pick = if rng.below(2) == 0 {
                        len - 1 - rng.below(len.min(32))
                    } else {
                        rng.below(len)
                    };
                    let (handle, id) = issued[pick as usize];
                    let got = wheel.cancel(handle);
                    match pending.remove(&id) {
                        Some(tick) => {
                            assert_eq!(got, Some(id), "step {step}");
                            by_tick.remove(&(tick, id));
                            cancelled_total += 1;
                        }
                        None => {
                            assert_eq!(got, None, "step {step}: stale handle");
                            stale_total += 1;
                        }
                    }
                }
                _ => {
                    let advance_us = match rng.below(100) {
                        0..=39 => rng.below(10_000),
                        40..=69 => rng.below(1_000_000),
                        70..=89 => rng.below(60_000_000),
                        90..=97 => rng.below(HOUR * 1000),
                        _ => rng.below(DAY * 1000),
                    };
                    now_us += advance_us;
                    let now = origin + Duration::from_micros(now_us);
                    // Sometimes let time pass without polling, as a busy loop might.
                    if rng.below(10) != 0 {
                        let now_ms = now_us / 1000;
                        let mut last_tick = 0;
                        while let Some(id) = wheel.poll(now) {
                            let tick = pending
                                .remove(&id)
                                .unwrap_or_else(|| panic!("step {step}: {id} not pending"));
                            assert!(tick <= now_ms, "step {step}: {id} fired early");
                            assert!(tick >= last_tick, "step {step}: out of order");
                            last_tick = tick;
                            by_tick.remove(&(tick, id));
                            fired_total += 1;
                        }
                        if let Some(&(tick, id)) = by_tick.first() {
                            assert!(tick > now_ms, "step {step}: {id} due {tick} not fired");
                        }
                    }
                }
            }
            assert_eq!(wheel.len(), pending.len(), "step {step}");
            let want = by_tick.first().map(|&(tick, _)| origin + ms(tick));
            assert_eq!(wheel.next_deadline(), want, "step {step}");
        }
        // Drain everything left and check it all comes out at the right times.
        while let Some(&(tick, _)) = by_tick.first() {
            let due = origin + ms(tick);
            if due > origin + Duration::from_micros(now_us) {
                assert_eq!(wheel.poll(due - Duration::from_nanos(1)), None);
            }
            let mut fired = HashSet::new();
            while let Some(id) = wheel.poll(due) {
                fired.insert(id);
            }
            let want: HashSet<u64> = by_tick
                .iter()
                .take_while(|&&(t, _)| t <= tick)
                .map(|&(_, id)| id)
                .collect();
            assert_eq!(fired, want);
            by_tick.retain(|&(t, _)| t > tick);
            fired_total += fired.len();
        }
        assert!(wheel.is_empty());
        assert!(fired_total > 1000, "fired {fired_total}");
        assert!(cancelled_total > 300, "cancelled {cancelled_total}");
        assert!(stale_total > 1000, "stale {stale_total}");
        assert_eq!(max_level_seen, LEVELS - 1, "top level exercised");
    }

    #[test]
    fn hundred_thousand_timers() {
        let origin = Instant::now();
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut wheel = TimerWheel::new(origin);
        let n = 100_000u64;
        let mut handles = Vec::with_capacity(n as usize);
        let mut deadlines = Vec::with_capacity(n as usize);
        for id in 0..n {
            let off = rng.below(2 * HOUR);
            deadlines.push(off);
            handles.push(wheel.insert(origin + ms(off), id));
        }
        assert_eq!(wheel.len(), n as usize);
        let mut cancelled = HashSet::new();
        for id in (0..n).step_by(3) {
            assert_eq!(wheel.cancel(handles[id as usize]), Some(id));
            cancelled.insert(id);
        }
        let min = (0..n)
            .filter(|id| !cancelled.contains(id))
            .map(|id| deadlines[id as usize])
            .min();
        assert_eq!(wheel.next_deadline(), min.map(|m| origin + ms(m)));

        let mut now = 0u64;
        let mut fired = HashSet::new();
        while now <= 2 * HOUR {
            let prev = now;
            now += rng.below(100_000);
            while let Some(id) = wheel.poll(origin + ms(now)) {
                let d = deadlines[id as usize];
                assert!(d <= now, "{id} early");
                assert!(d > prev || (prev == 0 && d == 0), "{id} late");
                assert!(fired.insert(id));
            }
        }
        assert!(wheel.is_empty());
        assert_eq!(fired.len() + cancelled.len(), n as usize);
        assert!(fired.is_disjoint(&cancelled));
        for (id, h) in handles.iter().enumerate() {
            assert_eq!(wheel.cancel(*h), None, "{id}");
        }

        // Warmed up: re-filling to the same size reuses the slab without growing it.
        let cap = wheel.entries.len();
        for id in 0..n {
            wheel.insert(origin + ms(now + 1 + id % 5000), id);
        }
        assert_eq!(wheel.entries.len(), cap);
        let mut count = 0;
        while wheel.poll(origin + ms(now + 5000)).is_some() {
            count += 1;
        }
        assert_eq!(count, n as usize);
    }
}
