//! Turning an unsatisfiable problem into sentences people can act on: which packages clash,
//! through which relation, and how each came to be wanted.

use std::collections::{HashMap, HashSet, VecDeque};

use resolvo::conflict::{Conflict, ConflictCause, ConflictEdge, ConflictNode};
use resolvo::{Interner, Requirement, SolvableId, Solver};

use super::provider::{Provider, VSet};

/// At most this many problems are listed; the first ones are enough to act on.
const MAX_PROBLEMS: usize = 12;

/// One sentence per problem of the conflict.
pub(crate) fn explain(solver: &Solver<Provider<'_>>, conflict: &Conflict) -> Vec<String> {
    let prov = solver.provider();
    let graph = conflict.graph(solver);
    let g = &graph.graph;
    let edges = g.raw_edges();

    // Who requires whom, to tell how a package came into the problem.
    let mut required_by: HashMap<_, Vec<_>> = HashMap::new();
    for e in edges {
        if let ConflictEdge::Requires(_) = e.weight {
            required_by.entry(e.target()).or_default().push(e.source());
        }
    }
    let why = |node| -> String {
        // Breadth-first back to the root: the shortest chain of packages.
        let mut prev = HashMap::new();
        let mut seen = HashSet::from([node]);
        let mut queue = VecDeque::from([node]);
        let mut top = None;
        while let Some(n) = queue.pop_front() {
            if matches!(g[n], ConflictNode::Root) {
                top = Some(n);
                break;
            }
            for &p in required_by.get(&n).map_or(&[][..], Vec::as_slice) {
                if seen.insert(p) {
                    prev.insert(p, n);
                    queue.push_back(p);
                }
            }
        }
        let mut chain: Vec<String> = Vec::new();
        let mut cur = top.and_then(|t| prev.get(&t).copied());
        while let Some(n) = cur {
            if let ConflictNode::Solvable(s) = g[n] {
                let name = prov.pkg(prov.pkg_of(s)).key.name.clone();
                if chain.last() != Some(&name) {
                    chain.push(name);
                }
            }
            cur = prev.get(&n).copied();
        }
        match chain.len() {
            0 => "how it is needed is not known".into(),
            1 => format!("{} is in the template", chain[0]),
            _ => format!(
                "{} is needed through {}",
                chain[chain.len() - 1],
                chain.join(" -> ")
            ),
        }
    };
    let solvable = |n| match g[n] {
        ConflictNode::Solvable(s) => Some(s),
        _ => None,
    };
    let show = |s: SolvableId| prov.show(prov.pkg_of(s));

    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) && out.len() < MAX_PROBLEMS {
            out.push(s);
        }
    };
    for e in edges {
        let (src, dst) = (e.source(), e.target());
        match e.weight {
            ConflictEdge::Conflict(ConflictCause::Constrains(vs)) => {
                let (Some(x), Some(y)) = (solvable(src), solvable(dst)) else {
                    continue;
                };
                let VSet::Avoid {
                    owner,
                    field,
                    relation,
                    ..
                } = prov.pool.resolve_version_set(vs)
                else {
                    continue;
                };
                let owner_name = &prov.pkg(*owner).key.name;
                let target = prov.pkg(prov.pkg_of(y));
                let named = relation.split([' ', ':', '(']).next().unwrap_or(relation);
                let how = if target.key.name == named {
                    String::new()
                } else {
                    format!(", which {} provides", target.key.name)
                };
                push(format!(
                    "{} and {} cannot be installed together: {owner_name} declares `{}: {relation}`{how} ({}; {})",
                    show(x),
                    show(y),
                    field.name(),
                    why(src),
                    why(dst)
                ));
            }
            ConflictEdge::Conflict(ConflictCause::ForbidMultipleInstances) => {
                let (Some(x), Some(y)) = (solvable(src), solvable(dst)) else {
                    continue;
                };
                let name = &prov.pkg(prov.pkg_of(x)).key.name;
                push(format!(
                    "two versions of {name} would be needed, {} and {} ({}; {})",
                    show(x),
                    show(y),
                    why(src),
                    why(dst)
                ));
            }
            ConflictEdge::Conflict(ConflictCause::Excluded | ConflictCause::Locked(_)) => {
                if let Some(x) = solvable(dst) {
                    push(format!(
                        "{} cannot be used: its relation fields cannot be parsed",
                        show(x)
                    ));
                }
            }
            ConflictEdge::Requires(req) if Some(dst) == graph.unresolved_node => {
                let wanted = match req {
                    Requirement::Single(vs) => prov.display_version_set(vs).to_string(),
                    Requirement::Union(u) => prov
                        .version_sets_in_union(u)
                        .map(|vs| prov.display_version_set(vs).to_string())
                        .collect::<Vec<_>>()
                        .join(" | "),
                };
                match solvable(src) {
                    Some(x) => push(format!(
                        "{} depends on `{wanted}`, which no package of the repositories satisfies ({})",
                        show(x),
                        why(src)
                    )),
                    None => push(format!(
                        "the template asks for `{wanted}`, which no package of the repositories satisfies"
                    )),
                }
            }
            ConflictEdge::Requires(_) => {}
        }
    }
    if out.is_empty() {
        // A shape of conflict the sentences above do not cover: the solver's own account.
        out.push(conflict.display_user_friendly(solver).to_string());
    }
    out
}
