//! Built-in decomposition templates, one per request type: which steps, which specialist role
//! does each, what each waits for. Pure data; `super::build` turns it into a workflow.

use super::request::RequestType;

/// The eight specialist roles of the seeds, and the capability each brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    ProductManager,
    Architect,
    CoreServices,
    McpProtocol,
    DocsIntegration,
    TestingSpecialist,
    ProductionOps,
    TechnicalWriter,
}

pub const ALL_ROLES: [Role; 8] = [
    Role::ProductManager,
    Role::Architect,
    Role::CoreServices,
    Role::McpProtocol,
    Role::DocsIntegration,
    Role::TestingSpecialist,
    Role::ProductionOps,
    Role::TechnicalWriter,
];

impl Role {
    /// The agent's name in a generated workflow.
    pub fn agent(self) -> &'static str {
        match self {
            Role::ProductManager => "product-manager",
            Role::Architect => "architect",
            Role::CoreServices => "core-services",
            Role::McpProtocol => "mcp-protocol",
            Role::DocsIntegration => "docs-integration",
            Role::TestingSpecialist => "testing-specialist",
            Role::ProductionOps => "production-ops",
            Role::TechnicalWriter => "technical-writer",
        }
    }

    /// The capability tasks of this role require.
    pub fn capability(self) -> &'static str {
        match self {
            Role::ProductManager => "requirements",
            Role::Architect => "design",
            Role::CoreServices => "backend",
            Role::McpProtocol => "protocol",
            Role::DocsIntegration => "docs-pipeline",
            Role::TestingSpecialist => "test",
            Role::ProductionOps => "ops",
            Role::TechnicalWriter => "writing",
        }
    }

    /// What the role is for, given to the agent as its standing instruction.
    pub fn brief(self) -> &'static str {
        match self {
            Role::ProductManager => "product manager: requirements, scope and acceptance criteria",
            Role::Architect => "software architect: design, interfaces and trade-offs",
            Role::CoreServices => "core services engineer: implementation in the codebase",
            Role::McpProtocol => "protocol engineer: APIs, integrations and tool interfaces",
            Role::DocsIntegration => {
                "docs integration engineer: finding and indexing documentation"
            }
            Role::TestingSpecialist => "testing specialist: tests, reproduction and verification",
            Role::ProductionOps => {
                "production operations engineer: builds, releases, monitoring and logs"
            }
            Role::TechnicalWriter => "technical writer: clear user-facing documentation",
        }
    }
}

/// When a step is part of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Always,
    /// Dropped by the `fast` strategy.
    NotFast,
    /// Only with the `thorough` strategy.
    Thorough,
}

/// One step of a template.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub id: &'static str,
    pub role: Role,
    /// What to do; the request's title and requirements are added to the prompt.
    pub does: &'static str,
    pub needs: &'static [&'static str],
    pub keep: Keep,
    /// The main work: one task per functional requirement when the request is complex.
    pub splits: bool,
    /// Irreversible: waits for an operator's approval under the `thorough` strategy.
    pub irreversible: bool,
    /// The request's quality gates are checked after this step (and its dependents wait).
    pub gated: bool,
}

const fn step(
    id: &'static str,
    role: Role,
    does: &'static str,
    needs: &'static [&'static str],
) -> Step {
    Step {
        id,
        role,
        does,
        needs,
        keep: Keep::Always,
        splits: false,
        irreversible: false,
        gated: false,
    }
}

const fn keep(mut s: Step, k: Keep) -> Step {
    s.keep = k;
    s
}

const fn splits(mut s: Step) -> Step {
    s.splits = true;
    s
}

const fn gated(mut s: Step) -> Step {
    s.gated = true;
    s
}

const fn irreversible(mut s: Step) -> Step {
    s.irreversible = true;
    s
}

use Role::*;

const FEATURE: &[Step] = &[
    step(
        "requirements",
        ProductManager,
        "Turn the request into requirements with acceptance criteria and the open questions.",
        &[],
    ),
    step(
        "design",
        Architect,
        "Design the change: components, interfaces, data and risks. Keep it as small as the requirements allow.",
        &["requirements"],
    ),
    gated(splits(step(
        "implement",
        CoreServices,
        "Implement the design in the codebase, with unit tests.",
        &["design"],
    ))),
    keep(
        step(
            "integration",
            McpProtocol,
            "Wire the new code into the APIs and tools that expose it.",
            &["design"],
        ),
        Keep::NotFast,
    ),
    step(
        "tests",
        TestingSpecialist,
        "Write integration tests for the acceptance criteria and run them.",
        &["implement", "integration"],
    ),
    keep(
        step(
            "security-review",
            TestingSpecialist,
            "Review the change for security problems: input handling, secrets, permissions.",
            &["implement"],
        ),
        Keep::Thorough,
    ),
    keep(
        step(
            "docs",
            TechnicalWriter,
            "Document the feature for users: what it does, how to use it, an example.",
            &["implement"],
        ),
        Keep::NotFast,
    ),
    irreversible(step(
        "release-notes",
        ProductionOps,
        "Prepare the change for release: release notes, rollout and rollback steps.",
        &["tests", "security-review", "docs"],
    )),
];

const DOCS: &[Step] = &[
    step(
        "audit",
        DocsIntegration,
        "Find the documentation the request touches and what is missing, wrong or out of date.",
        &[],
    ),
    keep(
        step(
            "outline",
            TechnicalWriter,
            "Outline the changes page by page.",
            &["audit"],
        ),
        Keep::NotFast,
    ),
    gated(splits(step(
        "write",
        TechnicalWriter,
        "Write the documentation changes.",
        &["outline"],
    ))),
    keep(
        step(
            "examples",
            CoreServices,
            "Check that every code example in the changed pages runs as written.",
            &["write"],
        ),
        Keep::NotFast,
    ),
    step(
        "review",
        ProductManager,
        "Review the changes for accuracy and for what a newcomer needs.",
        &["write", "examples"],
    ),
    irreversible(step(
        "publish",
        ProductionOps,
        "Publish the documentation and check the published pages.",
        &["review"],
    )),
];

const ANALYSIS: &[Step] = &[
    step(
        "inventory",
        CoreServices,
        "List the components involved, their owners and how they talk to each other.",
        &[],
    ),
    splits(step(
        "dependencies",
        McpProtocol,
        "Map the external dependencies and interfaces, with versions and risks.",
        &["inventory"],
    )),
    keep(
        step(
            "performance",
            ProductionOps,
            "Measure where time and resources go; name the biggest costs with figures.",
            &["inventory"],
        ),
        Keep::NotFast,
    ),
    keep(
        step(
            "reliability",
            TestingSpecialist,
            "Find the failure modes: what breaks, how it is detected, how it recovers.",
            &["inventory"],
        ),
        Keep::Thorough,
    ),
    gated(step(
        "synthesis",
        Architect,
        "Bring the findings together: the main problems, ranked, with recommendations.",
        &["dependencies", "performance", "reliability"],
    )),
    step(
        "report",
        TechnicalWriter,
        "Write the analysis report for its readers, with the recommendations first.",
        &["synthesis"],
    ),
];

const RELEASE: &[Step] = &[
    step(
        "scope",
        ProductManager,
        "Decide what is in the release and what is not; list the changes.",
        &[],
    ),
    gated(step(
        "verify",
        TestingSpecialist,
        "Run the full test suite on the release candidate and report the results.",
        &["scope"],
    )),
    step(
        "changelog",
        TechnicalWriter,
        "Write the changelog and upgrade notes.",
        &["scope"],
    ),
    keep(
        step(
            "build",
            ProductionOps,
            "Build the release artifacts and record their checksums.",
            &["verify"],
        ),
        Keep::Always,
    ),
    keep(
        step(
            "staging",
            ProductionOps,
            "Deploy the candidate to staging and smoke-test it.",
            &["build"],
        ),
        Keep::NotFast,
    ),
    irreversible(step(
        "release",
        ProductionOps,
        "Publish the release: tag, artifacts, deployment. Say how to roll back.",
        &["build", "staging", "changelog"],
    )),
    keep(
        step(
            "announce",
            TechnicalWriter,
            "Announce the release to its users.",
            &["release"],
        ),
        Keep::NotFast,
    ),
];

const BUG: &[Step] = &[
    step(
        "reproduce",
        TestingSpecialist,
        "Reproduce the bug with the smallest steps or test you can; say what happens and what should.",
        &[],
    ),
    keep(
        step(
            "logs",
            ProductionOps,
            "Look through logs and metrics from around the failures for clues.",
            &[],
        ),
        Keep::NotFast,
    ),
    step(
        "root-cause",
        CoreServices,
        "Find the root cause in the code, using the reproduction and the clues.",
        &["reproduce", "logs"],
    ),
    keep(
        step(
            "fix-design",
            Architect,
            "Choose the fix: the options, their risks, and the one to take.",
            &["root-cause"],
        ),
        Keep::Thorough,
    ),
    gated(step(
        "fix",
        CoreServices,
        "Fix the root cause, with a regression test that fails without the fix.",
        &["root-cause", "fix-design"],
    )),
    step(
        "verify",
        TestingSpecialist,
        "Verify the fix against the reproduction and run the whole test suite.",
        &["fix"],
    ),
    keep(
        step(
            "postmortem",
            TechnicalWriter,
            "Write a short postmortem: impact, cause, fix, and how to keep it from coming back.",
            &["verify"],
        ),
        Keep::NotFast,
    ),
];

pub fn template(kind: RequestType) -> &'static [Step] {
    match kind {
        RequestType::FeatureDevelopment => FEATURE,
        RequestType::DocumentationUpdate => DOCS,
        RequestType::SystemAnalysis => ANALYSIS,
        RequestType::ReleaseManagement => RELEASE,
        RequestType::BugInvestigation => BUG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_only_earlier_steps() {
        for kind in RequestType::ALL {
            let steps = template(kind);
            for (i, s) in steps.iter().enumerate() {
                for n in s.needs {
                    assert!(
                        steps[..i].iter().any(|e| e.id == *n),
                        "{}: {} needs {n}, which is not an earlier step",
                        kind.as_str(),
                        s.id
                    );
                }
            }
            assert!(
                steps.iter().any(|s| s.gated),
                "{} has no gated step",
                kind.as_str()
            );
            assert!(steps.iter().all(|s| s.keep != Keep::Thorough || !s.gated));
        }
    }
}
