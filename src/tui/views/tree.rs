//! The task tree (tui-tree-widget): run → level → task with state icons. Shares its selection
//! with the graph. Closed levels carry one placeholder child, so only opened levels cost anything.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_tree_widget::{Tree, TreeItem, TreeState};

use super::common::{counts_of, dim_span, pane_block, title_span};
use crate::tui::app::{App, tree_rows};
use crate::tui::keymap::Pane;
use crate::tui::theme::{run_icon, task_icon};

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let (Some(run), Some(layout)) = (app.run(), app.layout()) else {
        let block = pane_block(app, Pane::Graph, vec![title_span(app, "Tree")]);
        f.render_widget(
            Paragraph::new(dim_span(app, "waiting for a run…")).block(block),
            area,
        );
        return;
    };
    let t = &app.theme;
    let rows = tree_rows(app);
    let mut levels: Vec<TreeItem<'_, String>> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let (l, _) = rows[i];
        i += 1;
        let mut children = Vec::new();
        while i < rows.len() && rows[i].0 == l && rows[i].1.is_some() {
            if let Some(task) = rows[i].1 {
                let s = run.tasks[task as usize].state;
                let mut spans = vec![
                    Span::styled(format!("{} ", task_icon(s)), Style::default().fg(t.task(s))),
                    Span::raw(run.task_id(task).to_string()),
                    Span::styled(format!("  {s}"), Style::default().fg(t.task(s))),
                ];
                if let Some(a) = run.tasks[task as usize].open_attempt() {
                    spans.push(dim_span(app, format!(" on {}", a.agent)));
                }
                if layout.critical[task as usize] {
                    spans.push(Span::styled(" ━", Style::default().fg(t.critical)));
                }
                children.push(TreeItem::new_leaf(format!("t{task}"), Line::from(spans)));
            }
            i += 1;
        }
        let tasks = &layout.levels[l as usize];
        if children.is_empty() {
            children.push(TreeItem::new_leaf(format!("L{l}…"), dim_span(app, "…")));
        }
        let mut text = vec![Span::raw(format!(
            "Level {} · {} task{}  ",
            l + 1,
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" }
        ))];
        text.extend(counts_of(
            app,
            tasks.iter().map(|x| run.tasks[*x as usize].state),
        ));
        if let Ok(item) = TreeItem::new(format!("L{l}"), Line::from(text), children) {
            levels.push(item);
        }
    }
    let root_text = Line::from(vec![
        Span::styled(
            format!("{} ", run_icon(run.state)),
            Style::default().fg(t.run(run.state)),
        ),
        Span::raw(format!("{} ({})", run.workflow.name, run.id)),
    ]);
    let root_id = "run".to_string();
    let Ok(root) = TreeItem::new(root_id.clone(), root_text, levels) else {
        return;
    };
    let items = [root];
    let mut title = vec![title_span(app, "Tree")];
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!(" · filter: {}", app.filter),
            Style::default().fg(t.warning),
        ));
    }
    let Ok(tree) = Tree::new(&items) else {
        return;
    };
    let tree = tree
        .block(pane_block(app, Pane::Graph, title))
        .highlight_style(if app.focus == Pane::Graph {
            t.selected()
        } else {
            Style::default().bg(t.status_bg)
        })
        .highlight_symbol("› ")
        .node_closed_symbol("▸ ")
        .node_open_symbol("▾ ")
        .node_no_children_symbol("  ");
    let mut state = TreeState::default();
    state.open(vec![root_id.clone()]);
    for l in &app.tree_open {
        state.open(vec![root_id.clone(), format!("L{l}")]);
    }
    if !app.filter.is_empty() {
        for (l, _) in &rows {
            state.open(vec![root_id.clone(), format!("L{l}")]);
        }
    }
    let path = match (app.tree_level, app.selected_task()) {
        (Some(l), _) => vec![root_id.clone(), format!("L{l}")],
        (None, Some(task)) => {
            let l = layout.pos[task as usize].0;
            if rows.iter().any(|r| r.1 == Some(task)) {
                vec![root_id.clone(), format!("L{l}"), format!("t{task}")]
            } else {
                vec![root_id.clone(), format!("L{l}")]
            }
        }
        _ => vec![root_id],
    };
    state.select(path);
    f.render_stateful_widget(tree, area, &mut state);
}
