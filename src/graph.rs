//! Graph analysis over task dependencies (petgraph): topological order, levels, critical path,
//! cycle paths. Works on plain `needs` lists so validation can use it before a `Workflow` exists.

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

/// Returns one cycle as a path `a -> b -> ... -> a` (first node repeated at the end), if any.
pub fn find_cycle(needs: Needs<'_>) -> Option<Vec<TaskIdx>> {
    let _ = needs;
    todo!("graph")
}

/// Analyses an acyclic graph.
pub fn analyze(needs: Needs<'_>) -> Analysis {
    let _ = needs;
    todo!("graph")
}
