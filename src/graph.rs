//! Graph analysis over task dependencies (petgraph): topological order, levels, critical path,
//! cycle paths. Works on plain `needs` lists so validation can use it before a `Workflow` exists.
//!
//! Everything here is linear or near-linear and iterative (no recursion), because generated
//! workflows reach 100,000 tasks and a chain that long would overflow a recursive walk's stack.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::spec::TaskIdx;

/// `needs[i]` lists the tasks task `i` depends on.
pub type Needs<'a> = &'a [Vec<TaskIdx>];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Analysis {
    /// A topological order (dependencies first; ties in file order).
    pub topo: Vec<TaskIdx>,
    /// Parallel groups: level 0 has no dependencies, level k depends on level < k.
    pub levels: Vec<Vec<TaskIdx>>,
    /// The longest chain of tasks from a root to a leaf.
    pub critical_path: Vec<TaskIdx>,
    /// Per task: length (in tasks, itself included) of the longest path from it to a leaf.
    pub rank: Vec<u32>,
}

impl Analysis {
    /// Per task: its level (index into `levels`). Tasks missing from `levels` (only possible when
    /// `analyze` was given a cyclic graph) get `u32::MAX`.
    pub fn level_of(&self) -> Vec<u32> {
        let mut out = vec![u32::MAX; self.rank.len()];
        for (l, tasks) in self.levels.iter().enumerate() {
            for &t in tasks {
                if let Some(slot) = out.get_mut(t as usize) {
                    *slot = l as u32;
                }
            }
        }
        out
    }
}

/// Dependents of each task in compressed form (`list[start[v]..start[v + 1]]`), each run sorted
/// by index so scans meet tasks in file order. Indices out of range are skipped: validation
/// reports unknown `needs` on its own and must still be able to look for cycles among the rest.
struct Dependents {
    start: Vec<u32>,
    list: Vec<u32>,
    /// Per task: how many of its needs are in range (its in-degree in dependency order).
    need_count: Vec<u32>,
}

impl Dependents {
    fn new(needs: Needs<'_>) -> Self {
        let n = needs.len();
        let mut start = vec![0u32; n + 1];
        let mut need_count = vec![0u32; n];
        for (task, deps) in needs.iter().enumerate() {
            for &dep in deps {
                if (dep as usize) < n {
                    start[dep as usize + 1] += 1;
                    need_count[task] += 1;
                }
            }
        }
        for v in 0..n {
            start[v + 1] += start[v];
        }
        let mut fill = start.clone();
        let mut list = vec![0u32; start[n] as usize];
        // Tasks in index order, so each run ends up sorted.
        for (task, deps) in needs.iter().enumerate() {
            for &dep in deps {
                if (dep as usize) < n {
                    let at = &mut fill[dep as usize];
                    list[*at as usize] = task as u32;
                    *at += 1;
                }
            }
        }
        Dependents {
            start,
            list,
            need_count,
        }
    }

    fn of(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.list[self.start[v] as usize..self.start[v + 1] as usize]
    }
}

/// Returns one cycle as a path `a -> b -> ... -> a` (first node repeated at the end), if any.
///
/// The path follows `needs`: `[a, b, c, a]` reads "a needs b, b needs c, c needs a". The cycle
/// is deterministic: among all cyclic tasks it starts at the one earliest in file order and is a
/// shortest cycle through it, so error messages stay short and stable. A self-dependency comes
/// back as `[a, a]`.
pub fn find_cycle(needs: Needs<'_>) -> Option<Vec<TaskIdx>> {
    if in_file_order(needs) {
        return None;
    }
    let n = needs.len();
    let deps = Dependents::new(needs);

    // Peel off every task whose needs can all be met (Kahn without ordering). On a DAG that is
    // everything, which is the common case and costs one linear pass.
    let mut pending = deps.need_count.clone();
    let mut stack: Vec<u32> = (0..n as u32)
        .filter(|&v| pending[v as usize] == 0)
        .collect();
    let mut peeled = 0usize;
    while let Some(v) = stack.pop() {
        peeled += 1;
        for &d in deps.of(v) {
            pending[d as usize] -= 1;
            if pending[d as usize] == 0 {
                stack.push(d);
            }
        }
    }
    if peeled == n {
        return None;
    }

    // What is left are the cycles and the tasks that depend on them. Peel again from the other
    // end: drop tasks nothing left depends on. The rest lies on cycles or between them, which
    // keeps the SCC pass small even when a cycle sits under most of a large graph.
    let mut dependents_left = vec![0u32; n];
    for v in (0..n).filter(|&v| pending[v] > 0) {
        for &d in deps.of(v as u32) {
            if pending[d as usize] > 0 {
                dependents_left[v] += 1;
            }
        }
    }
    let mut keep: Vec<bool> = pending.iter().map(|&p| p > 0).collect();
    let mut stack: Vec<u32> = (0..n as u32)
        .filter(|&v| keep[v as usize] && dependents_left[v as usize] == 0)
        .collect();
    while let Some(v) = stack.pop() {
        keep[v as usize] = false;
        for &d in &needs[v as usize] {
            let d = d as usize;
            if d < n && keep[d] {
                dependents_left[d] -= 1;
                if dependents_left[d] == 0 {
                    stack.push(d as u32);
                }
            }
        }
    }

    // Compact numbering of the kept tasks, increasing with the index so "earliest" carries over.
    let kept: Vec<u32> = (0..n as u32).filter(|&v| keep[v as usize]).collect();
    let mut compact = vec![u32::MAX; n];
    for (k, &v) in kept.iter().enumerate() {
        compact[v as usize] = k as u32;
    }
    let m = kept.len();

    // Cyclic strongly connected components with petgraph (edge `task -> need`). Kosaraju rather
    // than `tarjan_scc`: petgraph's Tarjan recurses once per node on a path and overflows the
    // stack on long chains; Kosaraju walks with an explicit stack.
    let mut g: DiGraph<(), (), u32> = DiGraph::with_capacity(m, m);
    for _ in 0..m {
        g.add_node(());
    }
    for (k, &v) in kept.iter().enumerate() {
        for &dep in &needs[v as usize] {
            if let Some(&cd) = compact.get(dep as usize).filter(|&&c| c != u32::MAX) {
                g.add_edge(NodeIndex::new(k), NodeIndex::new(cd as usize), ());
            }
        }
    }
    let sccs = petgraph::algo::kosaraju_scc(&g);
    // Component id per node, and the earliest node that lies on some cycle.
    let mut comp = vec![usize::MAX; m];
    let mut start: Option<usize> = None;
    for (c, scc) in sccs.iter().enumerate() {
        let cyclic = scc.len() > 1 || scc.iter().any(|&v| g.contains_edge(v, v));
        if !cyclic {
            continue;
        }
        for &v in scc {
            comp[v.index()] = c;
        }
        if let Some(&min) = scc.iter().min() {
            let min = min.index();
            start = Some(start.map_or(min, |s| s.min(min)));
        }
    }
    let start = start?;
    let c = comp[start];

    // BFS inside the component from `start` until an edge leads back to it: that edge closes a
    // shortest cycle through `start`. Neighbours are visited in file order for determinism.
    let mut parent = vec![u32::MAX; m];
    let mut seen = vec![false; m];
    seen[start] = true;
    let mut queue = VecDeque::from([start]);
    let mut next: Vec<usize> = Vec::new();
    while let Some(v) = queue.pop_front() {
        next.clear();
        next.extend(
            g.neighbors_directed(NodeIndex::new(v), Direction::Outgoing)
                .map(|w| w.index())
                .filter(|&w| comp[w] == c),
        );
        next.sort_unstable();
        for &w in &next {
            if w == start {
                let mut path = vec![kept[start]];
                let mut at = v;
                while at != start {
                    path.push(kept[at]);
                    at = parent[at] as usize;
                }
                path.push(kept[start]);
                // Collected backwards from `v`; the ends are both `start`, reverse the middle.
                let len = path.len();
                path[1..len - 1].reverse();
                return Some(path);
            }
            if !seen[w] {
                seen[w] = true;
                parent[w] = v as u32;
                queue.push_back(w);
            }
        }
    }
    // Unreachable for a strongly connected component; report nothing rather than panic.
    None
}

/// Whether every need points to an earlier task: then file order is already topological (and
/// acyclic), which is how most files, and generated ones, are written.
fn in_file_order(needs: Needs<'_>) -> bool {
    needs
        .iter()
        .enumerate()
        .all(|(i, deps)| deps.iter().all(|&d| (d as usize) < i))
}

/// Analyses an acyclic graph.
///
/// Given a cyclic graph it does not panic: tasks on or downstream of a cycle are left out of
/// `topo`, `levels` and `critical_path` and get rank 0. So a caller that needs both can analyse
/// first and call `find_cycle` only when `topo` is shorter than `needs`.
///
/// Ties are broken by file order (the earliest ready task goes first), so `topo` equals file
/// order whenever the file already lists dependencies first. Cost: O(V + E) in that case, and
/// O(V log V + E) at worst, for the heap that orders tasks that turn ready "out of order".
pub fn analyze(needs: Needs<'_>) -> Analysis {
    let n = needs.len();
    let Walk {
        topo,
        level,
        rank,
        next,
    } = if in_file_order(needs) {
        walk_in_file_order(needs)
    } else {
        walk_general(needs)
    };

    // Each level in file order, sized up front (a level may hold most of the graph).
    let depth = topo
        .iter()
        .map(|&v| level[v as usize] as usize + 1)
        .max()
        .unwrap_or(0);
    let mut sizes = vec![0usize; depth];
    for &l in &level {
        if let Some(s) = sizes.get_mut(l as usize) {
            *s += 1;
        }
    }
    let mut levels: Vec<Vec<TaskIdx>> = sizes.into_iter().map(Vec::with_capacity).collect();
    for (i, &l) in level.iter().enumerate() {
        // Unplaced tasks (on or behind a cycle) carry `UNPLACED` and fall outside.
        if let Some(group) = levels.get_mut(l as usize) {
            group.push(i as TaskIdx);
        }
    }

    // Critical path: the earliest task of greatest rank (necessarily a root), then `next` down.
    let mut critical_path = Vec::new();
    let mut best: Option<u32> = None;
    for i in 0..n as u32 {
        if rank[i as usize] > best.map_or(0, |b| rank[b as usize]) {
            best = Some(i);
        }
    }
    let mut cur = best;
    while let Some(v) = cur {
        critical_path.push(v);
        cur = next.get(v as usize).copied().filter(|&w| w != NONE);
    }

    Analysis {
        topo,
        levels,
        critical_path,
        rank,
    }
}

/// Level of a task `analyze` could not place (on or behind a cycle).
const UNPLACED: u32 = u32::MAX;
/// No next task on the critical path.
const NONE: u32 = u32::MAX;

/// Per-task results of one pass over the graph.
struct Walk {
    topo: Vec<TaskIdx>,
    level: Vec<u32>,
    rank: Vec<u32>,
    /// The earliest dependent of greatest rank: the critical path's next step from a task.
    next: Vec<u32>,
}

/// The common case, every need earlier in the file: no sort and no reverse adjacency needed.
fn walk_in_file_order(needs: Needs<'_>) -> Walk {
    let n = needs.len();
    let mut level = vec![0u32; n];
    for (v, deps) in needs.iter().enumerate() {
        level[v] = deps
            .iter()
            .map(|&d| level[d as usize] + 1)
            .max()
            .unwrap_or(0);
    }
    // Rank pushed from each task to its needs, last task first: when a task is reached every
    // dependent has pushed its rank into `rank[task]`, which then only needs the task itself.
    // Dependents arrive in decreasing index order, so `>=` keeps the earliest of a tie.
    let mut rank = vec![0u32; n];
    let mut next = vec![NONE; n];
    for (v, deps) in needs.iter().enumerate().rev() {
        rank[v] += 1;
        let r = rank[v];
        for &d in deps {
            let d = d as usize;
            if r >= rank[d] {
                rank[d] = r;
                next[d] = v as u32;
            }
        }
    }
    Walk {
        topo: (0..n as u32).collect(),
        level,
        rank,
        next,
    }
}

/// Any order: Kahn's sort taking the earliest ready task first, with levels pushed along the
/// way, then ranks pulled in reverse over the dependents. Tasks on or behind a cycle are never
/// ready: they are left out of `topo` and keep level `UNPLACED` and rank 0.
fn walk_general(needs: Needs<'_>) -> Walk {
    let n = needs.len();
    let deps = Dependents::new(needs);
    // Ready tasks at or after `cursor` are only flagged and found by a forward scan; only a task
    // that turns ready behind the cursor goes to the min-heap, so a nearly ordered file costs
    // little more than a linear pass.
    let mut pending = deps.need_count.clone();
    let mut flagged: Vec<bool> = pending.iter().map(|&p| p == 0).collect();
    let mut late: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut cursor = 0usize;
    let mut topo = Vec::with_capacity(n);
    let mut level = vec![0u32; n];
    loop {
        while cursor < n && !flagged[cursor] {
            cursor += 1;
        }
        let v = match late.peek() {
            Some(&Reverse(h)) if (h as usize) < cursor || cursor == n => {
                late.pop();
                h
            }
            _ if cursor < n => {
                flagged[cursor] = false;
                cursor += 1;
                (cursor - 1) as u32
            }
            _ => break,
        };
        topo.push(v);
        let lv = level[v as usize] + 1;
        for &d in deps.of(v) {
            let d = d as usize;
            // All needs of `d` are placed before it, so its level is final once it is ready.
            level[d] = level[d].max(lv);
            pending[d] -= 1;
            if pending[d] == 0 {
                if d >= cursor {
                    flagged[d] = true;
                } else {
                    late.push(Reverse(d as u32));
                }
            }
        }
    }
    for (l, &p) in level.iter_mut().zip(&pending) {
        if p > 0 {
            *l = UNPLACED;
        }
    }

    let mut rank = vec![0u32; n];
    let mut next = vec![NONE; n];
    for &v in topo.iter().rev() {
        // Dependents are sorted by index and only a strictly greater rank replaces the best,
        // so ties go to the earliest. Unplaced dependents have rank 0 and never win.
        let (mut best, mut at) = (0u32, NONE);
        for &d in deps.of(v) {
            if rank[d as usize] > best {
                best = rank[d as usize];
                at = d;
            }
        }
        rank[v as usize] = best + 1;
        next[v as usize] = at;
    }
    Walk {
        topo,
        level,
        rank,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(edges: &[&[u32]]) -> Vec<Vec<u32>> {
        edges.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn empty_graph() {
        let a = analyze(&[]);
        assert!(a.topo.is_empty() && a.levels.is_empty() && a.critical_path.is_empty());
        assert_eq!(find_cycle(&[]), None);
    }

    #[test]
    fn diamond() {
        // 0 fetch, 1 lint, 2 build(0), 3 test(2), 4 docs(0), 5 release(3,4)
        let n = needs(&[&[], &[], &[0], &[2], &[0], &[3, 4]]);
        let a = analyze(&n);
        assert_eq!(a.topo, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(a.levels, vec![vec![0, 1], vec![2, 4], vec![3], vec![5]]);
        assert_eq!(a.rank, vec![4, 1, 3, 2, 2, 1]);
        assert_eq!(a.critical_path, vec![0, 2, 3, 5]);
        assert_eq!(a.level_of(), vec![0, 0, 1, 2, 1, 3]);
        assert_eq!(find_cycle(&n), None);
    }

    #[test]
    fn topo_breaks_ties_by_file_order() {
        // 0 needs 2, 1 needs nothing, 2 needs nothing: ready set starts {1, 2}.
        let a = analyze(&needs(&[&[2], &[], &[]]));
        assert_eq!(a.topo, vec![1, 2, 0]);
        assert_eq!(a.levels, vec![vec![1, 2], vec![0]]);
        // Two chains of length 2 and 1: 2 -> 0 wins.
        assert_eq!(a.critical_path, vec![2, 0]);
    }

    #[test]
    fn critical_path_ties_go_to_file_order() {
        // Two chains of equal length: 0 -> 1 and 2 -> 3; the first in the file wins.
        let a = analyze(&needs(&[&[], &[0], &[], &[2]]));
        assert_eq!(a.critical_path, vec![0, 1]);
        // Fan-out: both dependents of 0 have rank 1; the earliest is chosen.
        let a = analyze(&needs(&[&[], &[0], &[0]]));
        assert_eq!(a.critical_path, vec![0, 1]);
    }

    #[test]
    fn duplicate_needs_are_harmless() {
        let a = analyze(&needs(&[&[], &[0, 0]]));
        assert_eq!(a.topo, vec![0, 1]);
        assert_eq!(a.rank, vec![2, 1]);
    }

    #[test]
    fn cycle_reads_in_needs_direction() {
        // a(0) needs b(1), b needs c(2), c needs a.
        let n = needs(&[&[1], &[2], &[0]]);
        assert_eq!(find_cycle(&n), Some(vec![0, 1, 2, 0]));
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let n = needs(&[&[], &[1]]);
        assert_eq!(find_cycle(&n), Some(vec![1, 1]));
    }

    #[test]
    fn cycle_starts_at_earliest_task_and_is_shortest() {
        // 0 is fine; 1 -> 2 -> 3 -> 1 and a chord 1 -> 3: shortest through 1 is 1 -> 3 -> 1.
        let n = needs(&[&[], &[2, 3], &[3], &[1], &[3]]);
        assert_eq!(find_cycle(&n), Some(vec![1, 3, 1]));
    }

    #[test]
    fn out_of_range_needs_are_ignored() {
        let n = needs(&[&[7], &[0]]);
        assert_eq!(find_cycle(&n), None);
        assert_eq!(analyze(&n).topo, vec![0, 1]);
    }

    #[test]
    fn analyze_on_cycle_does_not_panic() {
        // 0 root, 1 <-> 2 cycle, 3 needs 2.
        let a = analyze(&needs(&[&[], &[2], &[1], &[2]]));
        assert_eq!(a.topo, vec![0]);
        assert_eq!(a.levels, vec![vec![0]]);
        assert_eq!(a.rank, vec![1, 0, 0, 0]);
        assert_eq!(a.critical_path, vec![0]);
    }

    #[test]
    fn long_chain_and_long_cycle_do_not_overflow_the_stack() {
        // Test threads have small stacks; a recursive walk would overflow here.
        let n = 100_000u32;
        let mut chain: Vec<Vec<u32>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(find_cycle(&chain), None);
        let a = analyze(&chain);
        assert_eq!(a.critical_path.len(), n as usize);
        chain[0] = vec![n - 1];
        let c = find_cycle(&chain).unwrap();
        assert_eq!(c.len(), n as usize + 1);
        assert_eq!(c[0], 0);
        assert_eq!(c[1], n - 1);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Random DAG: every edge goes from a task to one with a different index, oriented by a
    /// random permutation so that file order is not already topological.
    fn dag() -> impl Strategy<Value = Vec<Vec<u32>>> {
        (1usize..40).prop_flat_map(|n| {
            let edges = proptest::collection::vec((0..n, 0..n), 0..n * 3);
            let ordered = Just((0..n as u32).collect::<Vec<_>>());
            // Half the cases keep file order topological (the fast path), half shuffle it.
            let perm = prop_oneof![ordered.clone(), ordered.prop_shuffle()];
            (edges, perm).prop_map(move |(edges, perm)| {
                // Position in `perm` is the hidden topological order.
                let mut needs = vec![Vec::new(); n];
                for (a, b) in edges {
                    if a == b {
                        continue;
                    }
                    let (lo, hi) = (a.min(b), a.max(b));
                    // perm[hi] needs perm[lo]: needs always point earlier in the hidden order.
                    needs[perm[hi] as usize].push(perm[lo]);
                }
                needs
            })
        })
    }

    /// A DAG plus a planted cycle through some of its tasks.
    fn cyclic() -> impl Strategy<Value = Vec<Vec<u32>>> {
        dag().prop_flat_map(|needs| {
            let n = needs.len();
            let cycle = proptest::collection::vec(0..n as u32, 1..=n.min(6));
            (Just(needs), cycle).prop_map(|(mut needs, cycle)| {
                for w in 0..cycle.len() {
                    let from = cycle[w];
                    let to = cycle[(w + 1) % cycle.len()];
                    needs[from as usize].push(to);
                }
                needs
            })
        })
    }

    fn dependents(needs: &[Vec<u32>]) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); needs.len()];
        for (i, deps) in needs.iter().enumerate() {
            for &d in deps {
                out[d as usize].push(i as u32);
            }
        }
        out
    }

    /// Textbook Kahn with a min-heap: the order `analyze` must reproduce exactly.
    fn reference_topo(needs: &[Vec<u32>]) -> Vec<u32> {
        let deps_of = dependents(needs);
        let mut pending: Vec<usize> = needs.iter().map(Vec::len).collect();
        let mut heap: BinaryHeap<Reverse<u32>> = (0..needs.len() as u32)
            .filter(|&i| pending[i as usize] == 0)
            .map(Reverse)
            .collect();
        let mut out = Vec::new();
        while let Some(Reverse(v)) = heap.pop() {
            out.push(v);
            for &d in &deps_of[v as usize] {
                pending[d as usize] -= 1;
                if pending[d as usize] == 0 {
                    heap.push(Reverse(d));
                }
            }
        }
        out
    }

    /// Brute force: edges on the shortest cycle through `v`, if any.
    fn shortest_cycle_through(needs: &[Vec<u32>], v: usize) -> Option<usize> {
        let mut dist = vec![usize::MAX; needs.len()];
        let mut queue = VecDeque::from([(v, 0usize)]);
        while let Some((u, d)) = queue.pop_front() {
            for &w in &needs[u] {
                let w = w as usize;
                if w == v {
                    return Some(d + 1);
                }
                if dist[w] == usize::MAX {
                    dist[w] = d + 1;
                    queue.push_back((w, d + 1));
                }
            }
        }
        None
    }

    proptest! {
        #[test]
        fn topo_is_earliest_ready_first(needs in dag()) {
            prop_assert_eq!(analyze(&needs).topo, reference_topo(&needs));
        }

        #[test]
        fn analysis_is_consistent(needs in dag()) {
            let n = needs.len();
            let a = analyze(&needs);
            prop_assert_eq!(find_cycle(&needs), None);

            // topo: each node once, every need before its task.
            prop_assert_eq!(a.topo.len(), n);
            let mut pos = vec![usize::MAX; n];
            for (p, &v) in a.topo.iter().enumerate() {
                prop_assert_eq!(pos[v as usize], usize::MAX);
                pos[v as usize] = p;
            }
            for (i, deps) in needs.iter().enumerate() {
                for &d in deps {
                    prop_assert!(pos[d as usize] < pos[i]);
                }
            }

            // levels: a partition; level 0 = roots; strictly above every need, and exactly 1 + max.
            let level = a.level_of();
            prop_assert_eq!(a.levels.iter().map(Vec::len).sum::<usize>(), n);
            for (i, deps) in needs.iter().enumerate() {
                let want = deps.iter().map(|&d| level[d as usize] + 1).max().unwrap_or(0);
                prop_assert_eq!(level[i], want);
                for &d in deps {
                    prop_assert!(level[i] > level[d as usize]);
                }
            }
            for l in &a.levels {
                prop_assert!(!l.is_empty());
                prop_assert!(l.windows(2).all(|w| w[0] < w[1]));
            }

            // rank: 1 + max rank of dependents.
            let deps_of = dependents(&needs);
            for (ds, &r) in deps_of.iter().zip(&a.rank) {
                let want = 1 + ds.iter().map(|&d| a.rank[d as usize]).max().unwrap_or(0);
                prop_assert_eq!(r, want);
            }

            // critical path: starts at a root, ends at a sink, each step is an edge, length = max rank.
            let cp = &a.critical_path;
            let max_rank = a.rank.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(cp.len(), max_rank as usize);
            prop_assert!(needs[cp[0] as usize].is_empty());
            prop_assert!(deps_of[*cp.last().unwrap() as usize].is_empty());
            for w in cp.windows(2) {
                prop_assert!(needs[w[1] as usize].contains(&w[0]));
            }
        }

        #[test]
        fn analyze_survives_cycles(needs in cyclic()) {
            let a = analyze(&needs);
            // At least the planted cycle is left out; whatever is placed is consistent.
            prop_assert!(a.topo.len() < needs.len());
            prop_assert_eq!(a.levels.iter().map(Vec::len).sum::<usize>(), a.topo.len());
            prop_assert_eq!(a.critical_path.len() as u32, a.rank.iter().copied().max().unwrap_or(0));
        }

        #[test]
        fn planted_cycle_is_found(needs in cyclic()) {
            let c = find_cycle(&needs);
            prop_assert!(c.is_some());
            let c = c.unwrap();
            prop_assert!(c.len() >= 2);
            prop_assert_eq!(c.first(), c.last());
            // No node repeats except the closing one.
            let mut inner = c[..c.len() - 1].to_vec();
            inner.sort_unstable();
            inner.dedup();
            prop_assert_eq!(inner.len(), c.len() - 1);
            for w in c.windows(2) {
                prop_assert!(needs[w[0] as usize].contains(&w[1]), "{} does not need {}", w[0], w[1]);
            }
            // Deterministic choice: the earliest task on any cycle, and a shortest cycle through it.
            let (first, len) = (0..needs.len())
                .find_map(|v| shortest_cycle_through(&needs, v).map(|l| (v, l)))
                .unwrap();
            prop_assert_eq!(c[0] as usize, first);
            prop_assert_eq!(c.len() - 1, len);
        }
    }
}
