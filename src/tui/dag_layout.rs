//! Layered layout of a task graph for the terminal: levels become columns (left to right), an
//! edge that skips levels runs through a placeholder slot in each level it crosses, and the
//! order inside each column is improved by barycenter sweeps (fewer crossings). Computed once per
//! run; drawing then looks only at what is visible, so a 10,000-task graph costs no more to draw
//! than a small one.

use crate::graph;
use crate::spec::{TaskIdx, Workflow};

/// Rows per slot: a box is 3 rows tall, plus one row of space.
pub const SLOT_H: u32 = 4;
/// Columns between two levels, where the edges run.
pub const GAP_W: u32 = 5;
const MIN_W: u32 = 12;
const MAX_W: u32 = 30;
/// Placeholders are capped so a graph with many long edges stays cheap; edges beyond it are not
/// drawn (the task detail still lists every dependency).
const MAX_DUMMIES: usize = 100_000;
const SWEEPS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Task(TaskIdx),
    /// An edge passing through this level.
    Through {
        critical: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Column {
    /// Left edge in layout coordinates.
    pub x: u32,
    pub width: u32,
    pub slots: Vec<Slot>,
}

/// An edge between two adjacent columns: from slot `from` of column `c` to slot `to` of `c + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: u32,
    pub to: u32,
    pub critical: bool,
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
    /// Per task: (column, slot).
    pub pos: Vec<(u32, u32)>,
    /// Per gap `c` (between columns `c` and `c + 1`): its segments sorted by `top()`.
    pub gaps: Vec<Vec<Segment>>,
    /// Per gap: the tallest segment's height in slots (bounds the visible-range search).
    pub gap_span: Vec<u32>,
    pub critical: Vec<bool>,
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
        let mut dummy_critical: Vec<bool> = Vec::new();
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
        let mut task_pos = vec![(0u32, 0u32); n];
        let mut x = 0u32;
        let mut levels = Vec::with_capacity(depth);
        for (c, layer) in layers.iter().enumerate() {
            let mut width = MIN_W;
            let mut slots = Vec::with_capacity(layer.len());
            let mut tasks = Vec::new();
            for (s, v) in layer.iter().enumerate() {
                let v = *v as usize;
                if v < n {
                    let w = labels.get(v).map_or(0, |l| l.chars().count()) as u32 + 4;
                    width = width.max(w.min(MAX_W));
                    task_pos[v] = (c as u32, s as u32);
                    slots.push(Slot::Task(v as TaskIdx));
                    tasks.push(v as TaskIdx);
                } else {
                    slots.push(Slot::Through {
                        critical: dummy_critical[v - n],
                    });
                }
            }
            columns.push(Column { x, width, slots });
            levels.push(tasks);
            x += width + GAP_W;
        }

        // An edge is critical when its chain is: a placeholder carries the flag of its chain.
        let edge_is_critical = |u: u32, v: u32| -> bool {
            if v as usize >= n {
                dummy_critical[v as usize - n]
            } else if u as usize >= n {
                dummy_critical[u as usize - n]
            } else {
                crit_next[u as usize] == v
            }
        };

        // Segments per gap.
        let mut gaps: Vec<Vec<Segment>> = vec![Vec::new(); depth.saturating_sub(1)];
        for (c, layer) in layers.iter().enumerate().skip(1) {
            for (to, v) in layer.iter().enumerate() {
                for u in &up[*v as usize] {
                    gaps[c - 1].push(Segment {
                        from: pos[*u as usize] as u32,
                        to: to as u32,
                        critical: edge_is_critical(*u, *v),
                    });
                }
            }
        }
        let mut gap_span = Vec::with_capacity(gaps.len());
        for g in &mut gaps {
            g.sort_by_key(|s| (s.top(), s.bottom()));
            gap_span.push(g.iter().map(|s| s.bottom() - s.top()).max().unwrap_or(0));
        }

        DagLayout {
            columns,
            pos: task_pos,
            gaps,
            gap_span,
            critical,
            levels,
            hidden_edges,
        }
    }

    /// Width and height of the whole drawing.
    pub fn size(&self) -> (u32, u32) {
        let w = self.columns.last().map_or(0, |c| c.x + c.width);
        let h = self
            .columns
            .iter()
            .map(|c| c.slots.len() as u32)
            .max()
            .unwrap_or(0)
            * SLOT_H;
        (w, h)
    }

    /// The box of task `t`: (x, y, width, height) in layout coordinates.
    pub fn rect(&self, t: TaskIdx) -> Option<(u32, u32, u32, u32)> {
        let (c, s) = *self.pos.get(t as usize)?;
        let col = self.columns.get(c as usize)?;
        Some((col.x, s * SLOT_H, col.width, 3))
    }

    /// Columns that overlap `[x0, x1)`.
    pub fn visible_columns(&self, x0: u32, x1: u32) -> std::ops::Range<usize> {
        let start = self
            .columns
            .partition_point(|c| c.x + c.width + GAP_W <= x0);
        let end = self.columns.partition_point(|c| c.x < x1);
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
        let (w, h) = l.size();
        assert!(w > 0 && h > 0);
        let cols = l.visible_columns(0, 120);
        assert!(cols.len() < 10);
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
}
