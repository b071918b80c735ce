//! Layered layout of a task graph for the terminal: levels become columns (left to right), an
//! edge that skips levels runs through a placeholder slot in each level it crosses, and the
//! order inside each column is improved by barycenter sweeps (fewer crossings). Computed once per
//! run; drawing then looks only at what is visible, so a 10,000-task graph costs no more to draw
//! than a small one.
//!
//! Between two columns, each source's edges share one vertical *track* (a fan-out reads as one
//! tree); different sources get different tracks, ordered to avoid crossings and false joins,
//! and the gap widens (within limits) to fit them. The same slots are drawn at four zoom levels
//! (`Zoom`): full boxes, one-line boxes, one-cell dots (each with its own column positions), and
//! an overview that fits the whole graph in the window, a cell standing for several tasks.

use crate::graph;
use crate::spec::{TaskIdx, Workflow};

/// Placeholders are capped so a graph with many long edges stays cheap; edges beyond it are not
/// drawn (the task detail still lists every dependency).
const MAX_DUMMIES: usize = 100_000;
const SWEEPS: usize = 4;
/// Gaps with up to this many sources are ordered by a crossing count; larger ones by position.
const ORDER_LIMIT: usize = 48;
/// Up to this many sources get a track each; beyond it, sources whose spans do not overlap share.
const OWN_TRACKS: usize = 9;
/// Cost of an order that would draw one source's edge over another's into a different target.
const FALSE_JOIN: u32 = 1_000;

/// How much of each task the graph shows: a bordered box, a one-line label, a single cell, or
/// (overview) a share of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Zoom {
    #[default]
    Boxes,
    Compact,
    Dots,
    /// The whole graph in the window: a cell per level (or several) and per few slots. Its
    /// layout coordinates are plain (level, slot); `Buckets` map them to cells.
    Overview,
}

impl Zoom {
    pub const ALL: [Zoom; 4] = [Zoom::Boxes, Zoom::Compact, Zoom::Dots, Zoom::Overview];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Zoom::Boxes => "boxes",
            Zoom::Compact => "compact",
            Zoom::Dots => "dots",
            Zoom::Overview => "overview",
        }
    }

    /// Rows per slot.
    pub fn slot_h(self) -> u32 {
        match self {
            Zoom::Boxes => 4,
            Zoom::Compact | Zoom::Dots | Zoom::Overview => 1,
        }
    }

    /// Rows a task takes (the rest of its slot is space).
    pub fn box_h(self) -> u32 {
        match self {
            Zoom::Boxes => 3,
            Zoom::Compact | Zoom::Dots | Zoom::Overview => 1,
        }
    }

    /// The row of a slot where edges leave and arrive.
    pub fn mid(self) -> u32 {
        match self {
            Zoom::Boxes => 1,
            Zoom::Compact | Zoom::Dots | Zoom::Overview => 0,
        }
    }

    /// Narrowest and widest gap between two columns.
    pub fn gap_range(self) -> (u32, u32) {
        match self {
            Zoom::Boxes => (5, 11),
            Zoom::Compact => (3, 7),
            Zoom::Dots => (1, 1),
            Zoom::Overview => (0, 0),
        }
    }

    /// Width of a column whose longest task id has `label` characters.
    fn column_width(self, label: u32) -> u32 {
        match self {
            // Border, icon and space, id, border.
            Zoom::Boxes => (label + 4).clamp(12, 30),
            // Icon and space, id, one space before the edges.
            Zoom::Compact => (label + 3).clamp(6, 20),
            Zoom::Dots | Zoom::Overview => 1,
        }
    }

    /// One step closer (more detail), if there is one.
    pub fn zoom_in(self) -> Option<Zoom> {
        match self {
            Zoom::Boxes => None,
            Zoom::Compact => Some(Zoom::Boxes),
            Zoom::Dots => Some(Zoom::Compact),
            Zoom::Overview => Some(Zoom::Dots),
        }
    }

    /// One step further out (more tasks on screen), if there is one.
    pub fn zoom_out(self) -> Option<Zoom> {
        match self {
            Zoom::Boxes => Some(Zoom::Compact),
            Zoom::Compact => Some(Zoom::Dots),
            Zoom::Dots => Some(Zoom::Overview),
            Zoom::Overview => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Task(TaskIdx),
    /// An edge from task `src` to task `dst` passing through this level.
    Through {
        critical: bool,
        src: TaskIdx,
        dst: TaskIdx,
    },
}

#[derive(Debug, Clone)]
pub struct Column {
    pub slots: Vec<Slot>,
}

/// Where the columns are at one zoom level, in layout coordinates.
#[derive(Debug, Clone, Default)]
pub struct Geometry {
    /// Per column: left edge and width.
    pub x: Vec<u32>,
    pub width: Vec<u32>,
    /// Per gap (after column `c`): its width.
    pub gap: Vec<u32>,
}

impl Geometry {
    /// X of `track` (of `tracks`) in gap `g`: spread evenly over the gap's inner cells; tracks
    /// beyond what fits share (the layout caps how many there are).
    pub fn track_x(&self, g: usize, track: u16, tracks: u16) -> u32 {
        let x_from = self.x[g] + self.width[g];
        let inner = self.gap[g].saturating_sub(2);
        if inner == 0 || tracks == 0 {
            return x_from + self.gap[g] / 2;
        }
        let n = u32::from(tracks).min(inner);
        let k = u32::from(track) % n;
        x_from + 1 + ((2 * k + 1) * inner) / (2 * n)
    }
}

/// How the overview maps the layout to the window: a cell stands for `levels` levels and `slots`
/// slots of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub levels: u32,
    pub slots: u32,
}

/// An edge between two adjacent columns: from slot `from` of column `c` to slot `to` of `c + 1`,
/// part of the edge from task `src` to task `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: u32,
    pub to: u32,
    pub critical: bool,
    /// The vertical track (in the gap) of this segment's source.
    pub track: u16,
    pub src: TaskIdx,
    pub dst: TaskIdx,
}

impl Segment {
    pub fn top(&self) -> u32 {
        self.from.min(self.to)
    }
    pub fn bottom(&self) -> u32 {
        self.from.max(self.to)
    }
}

#[derive(Debug, Clone, Default)]
pub struct DagLayout {
    pub columns: Vec<Column>,
    /// Per zoom level (`Zoom::index`): column positions.
    pub geometry: [Geometry; 4],
    /// Per task: (column, slot).
    pub pos: Vec<(u32, u32)>,
    /// Per gap `c` (between columns `c` and `c + 1`): its segments sorted by `top()`.
    pub gaps: Vec<Vec<Segment>>,
    /// Per gap: the tallest segment's height in slots (bounds the visible-range search).
    pub gap_span: Vec<u32>,
    /// Per gap: how many tracks its segments use.
    pub tracks: Vec<u16>,
    pub critical: Vec<bool>,
    /// Per task: whether any edge leaves it (drawn, i.e. not hidden by the placeholder cap).
    pub fans_out: Vec<bool>,
    /// Per level: its tasks in drawing order (placeholders left out).
    pub levels: Vec<Vec<TaskIdx>>,
    /// Edges left undrawn because of the placeholder cap.
    pub hidden_edges: usize,
}

impl DagLayout {
    pub fn new(wf: &Workflow) -> DagLayout {
        let needs: Vec<Vec<TaskIdx>> = wf.tasks.iter().map(|t| t.needs.clone()).collect();
        let labels: Vec<&str> = wf.tasks.iter().map(|t| t.id.as_str()).collect();
        DagLayout::build(&needs, &labels)
    }

    pub fn build(needs: &[Vec<TaskIdx>], labels: &[&str]) -> DagLayout {
        let n = needs.len();
        let analysis = graph::analyze(needs);
        let level = analysis.level_of();
        let mut critical = vec![false; n];
        let mut crit_next = vec![u32::MAX; n];
        for w in analysis.critical_path.windows(2) {
            crit_next[w[0] as usize] = w[1];
        }
        for &t in &analysis.critical_path {
            critical[t as usize] = true;
        }
        let depth = analysis.levels.len();

        // Nodes: tasks 0..n, then placeholders. Edges between adjacent levels only.
        let mut layer_of: Vec<u32> = level.clone();
        let mut layers: Vec<Vec<u32>> = analysis.levels.clone();
        // Per placeholder: whether its chain is critical, and the edge (src, dst) it carries.
        let mut dummy_critical: Vec<bool> = Vec::new();
        let mut dummy_edge: Vec<(TaskIdx, TaskIdx)> = Vec::new();
        let mut up: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut down: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut hidden_edges = 0;
        for (t, deps) in needs.iter().enumerate() {
            let t = t as u32;
            let lt = level[t as usize];
            if lt == u32::MAX {
                continue;
            }
            for &d in deps {
                let ld = level.get(d as usize).copied().unwrap_or(u32::MAX);
                if ld == u32::MAX || ld >= lt {
                    continue;
                }
                let is_crit = crit_next.get(d as usize) == Some(&t);
                let span = (lt - ld) as usize;
                if span > 1 && dummy_critical.len() + span - 1 > MAX_DUMMIES {
                    hidden_edges += 1;
                    continue;
                }
                let mut prev = d;
                for l in ld + 1..lt {
                    let id = (n + dummy_critical.len()) as u32;
                    dummy_critical.push(is_crit);
                    dummy_edge.push((d, t));
                    layer_of.push(l);
                    layers[l as usize].push(id);
                    up.push(vec![prev]);
                    down.push(Vec::new());
                    down[prev as usize].push(id);
                    prev = id;
                }
                up[t as usize].push(prev);
                down[prev as usize].push(t);
            }
        }

        // Barycenter sweeps.
        let total = layer_of.len();
        let mut pos = vec![0f64; total];
        for layer in &layers {
            for (i, v) in layer.iter().enumerate() {
                pos[*v as usize] = i as f64;
            }
        }
        let mut keyed: Vec<(f64, u32)> = Vec::new();
        let mut reorder = |layer: &mut Vec<u32>, pos: &mut Vec<f64>, adj: &Vec<Vec<u32>>| {
            keyed.clear();
            for v in layer.iter() {
                let ns = &adj[*v as usize];
                let key = if ns.is_empty() {
                    pos[*v as usize]
                } else {
                    ns.iter().map(|u| pos[*u as usize]).sum::<f64>() / ns.len() as f64
                };
                keyed.push((key, *v));
            }
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (i, (_, v)) in keyed.iter().enumerate() {
                layer[i] = *v;
                pos[*v as usize] = i as f64;
            }
        };
        if depth > 1 {
            for _ in 0..SWEEPS {
                for layer in layers.iter_mut().skip(1) {
                    reorder(layer, &mut pos, &up);
                }
                for layer in layers[..depth - 1].iter_mut().rev() {
                    reorder(layer, &mut pos, &down);
                }
            }
            for layer in layers.iter_mut().skip(1) {
                reorder(layer, &mut pos, &up);
            }
        }

        // Columns.
        let mut columns = Vec::with_capacity(depth);
        let mut label_w = Vec::with_capacity(depth);
        let mut task_pos = vec![(0u32, 0u32); n];
        let mut levels = Vec::with_capacity(depth);
        for (c, layer) in layers.iter().enumerate() {
            let mut widest = 0u32;
            let mut slots = Vec::with_capacity(layer.len());
            let mut tasks = Vec::new();
            for (s, v) in layer.iter().enumerate() {
                let v = *v as usize;
                if v < n {
                    let w = labels.get(v).map_or(0, |l| l.chars().count()) as u32;
                    widest = widest.max(w);
                    task_pos[v] = (c as u32, s as u32);
                    slots.push(Slot::Task(v as TaskIdx));
                    tasks.push(v as TaskIdx);
                } else {
                    let (src, dst) = dummy_edge[v - n];
                    slots.push(Slot::Through {
                        critical: dummy_critical[v - n],
                        src,
                        dst,
                    });
                }
            }
            columns.push(Column { slots });
            label_w.push(widest);
            levels.push(tasks);
        }

        // An edge is critical when its chain is: a placeholder carries the flag of its chain.
        let edge_of = |u: u32, v: u32| -> (bool, TaskIdx, TaskIdx) {
            if v as usize >= n {
                let (s, d) = dummy_edge[v as usize - n];
                (dummy_critical[v as usize - n], s, d)
            } else if u as usize >= n {
                let (s, d) = dummy_edge[u as usize - n];
                (dummy_critical[u as usize - n], s, d)
            } else {
                (crit_next[u as usize] == v, u, v)
            }
        };

        // Segments per gap, each source's given a track.
        let mut gaps: Vec<Vec<Segment>> = vec![Vec::new(); depth.saturating_sub(1)];
        for (c, layer) in layers.iter().enumerate().skip(1) {
            for (to, v) in layer.iter().enumerate() {
                for u in &up[*v as usize] {
                    let (critical, src, dst) = edge_of(*u, *v);
                    gaps[c - 1].push(Segment {
                        from: pos[*u as usize] as u32,
                        to: to as u32,
                        critical,
                        track: 0,
                        src,
                        dst,
                    });
                }
            }
        }
        let mut gap_span = Vec::with_capacity(gaps.len());
        let mut tracks = Vec::with_capacity(gaps.len());
        for g in &mut gaps {
            g.sort_by_key(|s| (s.from, s.to));
            tracks.push(assign_tracks(g));
            g.sort_by_key(|s| (s.top(), s.bottom()));
            gap_span.push(g.iter().map(|s| s.bottom() - s.top()).max().unwrap_or(0));
        }

        let geometry = Zoom::ALL.map(|z| {
            let (min_gap, max_gap) = z.gap_range();
            let mut geo = Geometry::default();
            let mut x = 0u32;
            for (c, w) in label_w.iter().enumerate() {
                let width = z.column_width(*w);
                geo.x.push(x);
                geo.width.push(width);
                x += width;
                if let Some(t) = tracks.get(c) {
                    let gap = (u32::from(*t) + 2).clamp(min_gap, max_gap);
                    geo.gap.push(gap);
                    x += gap;
                }
            }
            geo
        });
        let fans_out = down[..n].iter().map(|d| !d.is_empty()).collect();

        DagLayout {
            columns,
            geometry,
            pos: task_pos,
            gaps,
            gap_span,
            tracks,
            critical,
            fans_out,
            levels,
            hidden_edges,
        }
    }

    pub fn geo(&self, z: Zoom) -> &Geometry {
        &self.geometry[z.index()]
    }

    /// Width and height of the whole drawing at zoom `z`.
    pub fn size(&self, z: Zoom) -> (u32, u32) {
        let g = self.geo(z);
        let w =
            g.x.last()
                .map_or(0, |x| x + g.width.last().copied().unwrap_or(0));
        let h = self
            .columns
            .iter()
            .map(|c| c.slots.len() as u32)
            .max()
            .unwrap_or(0)
            * z.slot_h();
        (w, h)
    }

    /// The box of task `t` at zoom `z`: (x, y, width, height) in layout coordinates.
    pub fn rect(&self, z: Zoom, t: TaskIdx) -> Option<(u32, u32, u32, u32)> {
        let (c, s) = *self.pos.get(t as usize)?;
        let g = self.geo(z);
        Some((
            *g.x.get(c as usize)?,
            s * z.slot_h(),
            *g.width.get(c as usize)?,
            z.box_h(),
        ))
    }

    /// The task drawn at layout position (`x`, `y`) at zoom `z`, if any.
    pub fn task_at(&self, z: Zoom, x: u32, y: u32) -> Option<TaskIdx> {
        let g = self.geo(z);
        let c = g.x.partition_point(|cx| *cx <= x).checked_sub(1)?;
        if x >= g.x[c] + g.width[c] || y % z.slot_h() >= z.box_h() {
            return None;
        }
        match self.columns.get(c)?.slots.get((y / z.slot_h()) as usize)? {
            Slot::Task(t) => Some(*t),
            Slot::Through { .. } => None,
        }
    }

    /// The overview's cell sizes for a `vw` x `vh` window: the smallest cells that still let
    /// the whole graph fit.
    pub fn buckets(&self, vw: u32, vh: u32) -> Buckets {
        let (w, h) = self.size(Zoom::Overview);
        Buckets {
            levels: w.div_ceil(vw.max(1)).max(1),
            slots: h.div_ceil(vh.max(1)).max(1),
        }
    }

    /// The overview cell (column, row) showing task `t`.
    pub fn bucket_of(&self, b: Buckets, t: TaskIdx) -> Option<(u32, u32)> {
        let (c, s) = *self.pos.get(t as usize)?;
        Some((c / b.levels, s / b.slots))
    }

    /// A task shown in overview cell (`x`, `y`): the first one, level by level.
    pub fn task_in_bucket(&self, b: Buckets, x: u32, y: u32) -> Option<TaskIdx> {
        let c0 = ((x * b.levels) as usize).min(self.columns.len());
        let c1 = (((x + 1) * b.levels) as usize).min(self.columns.len());
        self.columns[c0..c1].iter().find_map(|col| {
            let s1 = (((y + 1) * b.slots) as usize).min(col.slots.len());
            let s0 = ((y * b.slots) as usize).min(s1);
            col.slots[s0..s1].iter().find_map(|s| match s {
                Slot::Task(t) => Some(*t),
                Slot::Through { .. } => None,
            })
        })
    }

    /// Columns that overlap `[x0, x1)` at zoom `z` (with the gap after each).
    pub fn visible_columns(&self, z: Zoom, x0: u32, x1: u32) -> std::ops::Range<usize> {
        let g = self.geo(z);
        let start =
            g.x.partition_point(|x| *x < x0)
                .saturating_sub(1)
                .min(g.x.len());
        // `start` is the last column starting before x0: skip it when it and its gap end there.
        let start = if start < g.x.len()
            && g.x[start] + g.width[start] + g.gap.get(start).copied().unwrap_or(0) <= x0
        {
            start + 1
        } else {
            start
        };
        let end = g.x.partition_point(|x| *x < x1);
        start..end.max(start)
    }

    /// Segments of gap `g` that may cross slot rows `[s0, s1]`.
    pub fn visible_segments(&self, g: usize, s0: u32, s1: u32) -> impl Iterator<Item = &Segment> {
        let segs = self.gaps.get(g).map(Vec::as_slice).unwrap_or(&[]);
        let span = self.gap_span.get(g).copied().unwrap_or(0);
        let start = segs.partition_point(|s| s.top() + span < s0);
        segs[start..]
            .iter()
            .take_while(move |s| s.top() <= s1)
            .filter(move |s| s.bottom() >= s0)
    }

    /// The task nearest to slot `slot` in column `c` (placeholders skipped), searching columns
    /// further in direction `dir` (-1 or +1) when `c` holds no task.
    pub fn nearest_in_column(&self, c: i64, slot: u32, dir: i64) -> Option<TaskIdx> {
        let mut c = c;
        while c >= 0 && (c as usize) < self.columns.len() {
            let col = &self.columns[c as usize];
            let best = col
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match s {
                    Slot::Task(t) => {
                        Some((i as i64 - slot as i64).unsigned_abs() as u32).map(|d| (d, *t))
                    }
                    Slot::Through { .. } => None,
                })
                .min_by_key(|(d, _)| *d);
            if let Some((_, t)) = best {
                return Some(t);
            }
            if dir == 0 {
                return None;
            }
            c += dir;
        }
        None
    }

    /// The next task up (`dir` -1) or down (+1) in `t`'s column.
    pub fn step_in_column(&self, t: TaskIdx, dir: i64) -> Option<TaskIdx> {
        let (c, s) = *self.pos.get(t as usize)?;
        let col = self.columns.get(c as usize)?;
        let mut i = s as i64 + dir;
        while i >= 0 && (i as usize) < col.slots.len() {
            if let Slot::Task(x) = col.slots[i as usize] {
                return Some(x);
            }
            i += dir;
        }
        None
    }
}

/// The segments of one gap leaving one source slot.
struct Group {
    from: u32,
    lo: u32,
    hi: u32,
    segs: std::ops::Range<usize>,
}

/// Gives each source in a gap a vertical track and returns how many tracks there are. `segs`
/// must be sorted by (from, to). Sources whose edges all run straight need no track.
///
/// Order matters: with source A's track left of B's, A's edges into rows inside B's span cross
/// B's track, and B's first leg crosses A's track when B's row is inside A's span — and when A
/// has an edge into B's own row (and B does not), the two would be drawn on the same cells, a
/// join that is not there. Each source is inserted where it adds the fewest such costs.
fn assign_tracks(segs: &mut [Segment]) -> u16 {
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let from = segs[i].from;
        let mut j = i;
        let (mut lo, mut hi) = (from, from);
        while j < segs.len() && segs[j].from == from {
            lo = lo.min(segs[j].to);
            hi = hi.max(segs[j].to);
            j += 1;
        }
        groups.push(Group {
            from,
            lo,
            hi,
            segs: i..j,
        });
        i = j;
    }
    let vertical: Vec<usize> = (0..groups.len())
        .filter(|g| groups[*g].lo < groups[*g].hi)
        .collect();
    if vertical.is_empty() {
        return 0;
    }
    let targets = |g: &Group, r: u32| {
        segs[g.segs.clone()]
            .binary_search_by_key(&r, |s| s.to)
            .is_ok()
    };
    // What putting `a`'s track left of `b`'s costs: crossings, and false joins.
    let cost = |a: &Group, b: &Group| -> u32 {
        let mut c = 0;
        for s in &segs[a.segs.clone()] {
            if s.to > b.lo && s.to < b.hi && !targets(b, s.to) {
                c += 1;
            }
        }
        if targets(a, b.from) {
            if !targets(b, b.from) {
                c += FALSE_JOIN;
            }
        } else if b.from > a.lo && b.from < a.hi {
            c += 1;
        }
        c
    };
    let order: Vec<usize> = if vertical.len() <= ORDER_LIMIT {
        let mut order: Vec<usize> = Vec::with_capacity(vertical.len());
        let mut left = Vec::new();
        let mut right = Vec::new();
        for &g in &vertical {
            left.clear();
            right.clear();
            left.extend(order.iter().map(|o| cost(&groups[*o], &groups[g])));
            right.extend(order.iter().map(|o| cost(&groups[g], &groups[*o])));
            // Inserting at p: everything before p is left of g, the rest right of it.
            let mut total: u32 = right.iter().sum();
            let (mut best, mut best_p) = (total, 0);
            for p in 0..order.len() {
                total = total - right[p] + left[p];
                if total < best {
                    best = total;
                    best_p = p + 1;
                }
            }
            order.insert(best_p, g);
        }
        order
    } else {
        vertical
    };
    let mut track = vec![0u16; groups.len()];
    let count = if order.len() <= OWN_TRACKS {
        for (k, g) in order.iter().enumerate() {
            track[*g] = k as u16;
        }
        order.len()
    } else {
        // Many sources: a track is reused by a source whose span starts below the last one's.
        let mut last_hi: Vec<u32> = Vec::new();
        for &g in &order {
            let k = last_hi
                .iter()
                .position(|h| *h < groups[g].lo)
                .unwrap_or(last_hi.len());
            if k == last_hi.len() {
                last_hi.push(groups[g].hi);
            } else {
                last_hi[k] = groups[g].hi;
            }
            track[g] = k.min(usize::from(u16::MAX)) as u16;
        }
        last_hi.len()
    };
    for (g, grp) in groups.iter().enumerate() {
        for s in &mut segs[grp.segs.clone()] {
            s.track = track[g];
        }
    }
    count.min(usize::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crossings(l: &DagLayout) -> usize {
        let mut n = 0;
        for g in &l.gaps {
            for (i, a) in g.iter().enumerate() {
                for b in &g[i + 1..] {
                    if (a.from < b.from && a.to > b.to) || (a.from > b.from && a.to < b.to) {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    #[test]
    fn levels_become_columns_and_long_edges_pass_through_placeholders() {
        // a -> b -> c, and a -> c directly: the direct edge crosses level 1.
        let l = DagLayout::build(&[vec![], vec![0], vec![0, 1]], &["a", "b", "c"]);
        assert_eq!(l.columns.len(), 3);
        assert_eq!(l.columns[1].slots.len(), 2);
        assert!(
            l.columns[1]
                .slots
                .iter()
                .any(|s| matches!(s, Slot::Through { .. }))
        );
        assert_eq!(l.pos[2].0, 2);
        assert_eq!(l.gaps[0].len(), 2);
        assert_eq!(l.gaps[1].len(), 2);
        assert!(l.critical[0] && l.critical[1] && l.critical[2]);
    }

    #[test]
    fn barycenter_ordering_untangles_crossed_pairs() {
        // Roots a, b; x needs b and y needs a: file order would cross, the sweep must not.
        let l = DagLayout::build(&[vec![], vec![], vec![1], vec![0]], &["a", "b", "x", "y"]);
        assert_eq!(crossings(&l), 0);
    }

    #[test]
    fn visible_segments_find_long_edges_that_only_pass_through() {
        // One root, 100 children: the root's edge to the last child spans the whole column.
        let mut needs = vec![vec![]];
        needs.extend((0..100).map(|_| vec![0]));
        let labels: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let l = DagLayout::build(&needs, &labels);
        let seen = l.visible_segments(0, 50, 52).count();
        assert!(seen >= 3, "edges through rows 50-52: {seen}");
        assert_eq!(l.visible_segments(0, 200, 300).count(), 0);
    }

    #[test]
    fn ten_thousand_tasks_lay_out_quickly() {
        let n = 10_000u32;
        let needs: Vec<Vec<u32>> = (0..n)
            .map(|i| {
                if i < 10 {
                    vec![]
                } else {
                    vec![i - 10, (i * 7) % (i - 9)]
                }
            })
            .collect();
        let labels: Vec<String> = (0..n).map(|i| format!("task-{i}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let l = DagLayout::build(&needs, &labels);
        assert_eq!(l.pos.len(), n as usize);
        for z in Zoom::ALL {
            let (w, h) = l.size(z);
            assert!(w > 0 && h > 0);
            let cols = l.visible_columns(z, 0, 120);
            assert!(cols.len() <= 120, "{z:?}: {cols:?}");
        }
        assert!(l.visible_columns(Zoom::Boxes, 0, 120).len() < 10);
    }

    #[test]
    fn moving_between_columns_and_slots() {
        let l = DagLayout::build(
            &[vec![], vec![0], vec![0], vec![1, 2]],
            &["a", "b", "c", "d"],
        );
        let b = l.step_in_column(1, 1).or(l.step_in_column(1, -1)).unwrap();
        assert!(b == 2 || b == 1);
        assert_eq!(l.nearest_in_column(0, 5, 1), Some(0));
        assert_eq!(l.nearest_in_column(2, 0, 1), Some(3));
        assert_eq!(l.nearest_in_column(7, 0, 1), None);
    }

    /// Pairs of sources in one gap drawn as joined though they are not: source S's first leg
    /// and another source's edge into S's row on the same cells, S not having an edge there.
    /// Two sources with edges into each other's rows (an X) cannot avoid it; they are left out.
    fn false_joins(l: &DagLayout, z: Zoom) -> usize {
        let geo = l.geo(z);
        let mut n = 0;
        for (g, segs) in l.gaps.iter().enumerate() {
            let x = |s: &Segment| geo.track_x(g, s.track, l.tracks[g]);
            let has = |from: u32, to: u32| segs.iter().any(|t| t.from == from && t.to == to);
            for s in segs {
                for o in segs {
                    let x_shape = has(s.from, o.from) && !has(o.from, o.from);
                    if o.from != s.from
                        && o.to == s.from
                        && !has(s.from, s.from)
                        && !x_shape
                        && x(o) < x(s)
                    {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    #[test]
    fn each_source_in_a_gap_gets_its_own_track_without_false_joins() {
        // Level 0: a, b, c. Level 1: x needs a, b, c; y needs a; z needs c; w needs b.
        let needs = [
            vec![],
            vec![],
            vec![],
            vec![0, 1, 2],
            vec![0],
            vec![2],
            vec![1],
        ];
        let l = DagLayout::build(&needs, &["a", "b", "c", "x", "y", "z", "w"]);
        let g = &l.gaps[0];
        let mut by_source: std::collections::HashMap<u32, u16> = Default::default();
        for s in g {
            if let Some(t) = by_source.insert(s.from, s.track) {
                assert_eq!(t, s.track, "one source, one track");
            }
        }
        let fanning: Vec<u32> = by_source
            .keys()
            .copied()
            .filter(|f| g.iter().any(|s| s.from == *f && s.to != *f))
            .collect();
        let mut tracks: Vec<u16> = fanning.iter().map(|f| by_source[f]).collect();
        tracks.sort();
        tracks.dedup();
        assert_eq!(tracks.len(), fanning.len(), "{g:?}");
        for z in [Zoom::Boxes, Zoom::Compact] {
            assert_eq!(false_joins(&l, z), 0, "{z:?}: {g:?}");
        }
        // The gap widens to hold the tracks.
        assert!(l.geo(Zoom::Boxes).gap[0] >= l.tracks[0] as u32 + 2);
    }

    #[test]
    fn no_false_joins_in_small_generated_graphs() {
        let mut rng = 7u64;
        let mut next = |m: u32| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 33) % u64::from(m)) as u32
        };
        for _ in 0..200 {
            let n = 4 + next(12);
            let needs: Vec<Vec<u32>> = (0..n)
                .map(|i| {
                    let k = if i == 0 { 0 } else { next(3) };
                    let mut d: Vec<u32> = (0..k).map(|_| next(i)).collect();
                    d.sort();
                    d.dedup();
                    d
                })
                .collect();
            let labels: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let l = DagLayout::build(&needs, &labels);
            assert_eq!(false_joins(&l, Zoom::Boxes), 0, "{needs:?}");
        }
    }

    #[test]
    fn every_zoom_level_places_and_finds_every_task() {
        let needs = [vec![], vec![0], vec![0], vec![1, 2], vec![0], vec![3, 4]];
        let l = DagLayout::build(&needs, &["checkout", "a", "bee", "c", "dd", "release"]);
        let widths: Vec<u32> = Zoom::ALL.iter().map(|z| l.size(*z).0).collect();
        assert!(widths.windows(2).all(|w| w[0] > w[1]), "{widths:?}");
        assert_eq!(widths[3], 4, "the overview: a column per level");
        for z in Zoom::ALL {
            for t in 0..needs.len() as u32 {
                let (x, y, w, h) = l.rect(z, t).unwrap();
                assert_eq!(h, z.box_h());
                assert_eq!(l.task_at(z, x, y), Some(t), "{z:?}");
                assert_eq!(l.task_at(z, x + w - 1, y + h - 1), Some(t), "{z:?}");
                if z.gap_range().0 > 0 {
                    assert_eq!(l.task_at(z, x + w, y), None, "{z:?}: right of the box");
                }
            }
            assert_eq!(l.rect(Zoom::Dots, 0).unwrap().2, 1);
        }
    }

    #[test]
    fn visible_columns_are_exactly_those_overlapping_the_window() {
        let needs: Vec<Vec<u32>> = (0..30u32)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1, i / 2] })
            .collect();
        let labels: Vec<String> = (0..30).map(|i| "x".repeat(i % 7 + 1)).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let l = DagLayout::build(&needs, &labels);
        for z in Zoom::ALL {
            let g = l.geo(z);
            let (w, _) = l.size(z);
            for x0 in (0..w).step_by(3) {
                for span in [1, 7, 40] {
                    let x1 = x0 + span;
                    let want: Vec<usize> = (0..g.x.len())
                        .filter(|c| {
                            let end = g.x[*c] + g.width[*c] + g.gap.get(*c).copied().unwrap_or(0);
                            g.x[*c] < x1 && end > x0
                        })
                        .collect();
                    let got: Vec<usize> = l.visible_columns(z, x0, x1).collect();
                    assert_eq!(got, want, "{z:?} [{x0}, {x1})");
                }
            }
        }
    }
}

#[cfg(test)]
mod overview_tests {
    use super::*;

    #[test]
    fn the_overview_fits_any_graph_and_finds_its_tasks() {
        // 40 levels, 100 tasks wide.
        let needs: Vec<Vec<u32>> = (0..4000u32)
            .map(|i| if i < 100 { vec![] } else { vec![i - 100] })
            .collect();
        let labels: Vec<String> = (0..4000).map(|i| format!("t{i}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let l = DagLayout::build(&needs, &labels);
        let b = l.buckets(30, 20);
        assert_eq!(
            b,
            Buckets {
                levels: 2,
                slots: 5
            }
        );
        for t in (0..4000).step_by(37) {
            let (x, y) = l.bucket_of(b, t).unwrap();
            assert!(x < 30 && y < 20);
            let found = l.task_in_bucket(b, x, y).unwrap();
            assert_eq!(l.bucket_of(b, found), Some((x, y)));
        }
        assert_eq!(l.task_in_bucket(b, 25, 0), None, "past the last level");
        assert_eq!(
            l.buckets(200, 200),
            Buckets {
                levels: 1,
                slots: 1
            }
        );
    }
}
