//! Matrix expansion: the cartesian product of a task's matrix axes, in key order (the first key
//! varies slowest), and the instance ids `test[os=linux,arch=x86]`.

use indexmap::IndexMap;
use serde_json::Value;

use super::task::Axis;

/// More instances than this from one task is almost certainly a mistake.
pub const MAX_INSTANCES: usize = 10_000;

/// Number of instances the axes produce (saturating).
pub fn count(axes: &[Axis<'_>]) -> usize {
    axes.iter()
        .fold(1usize, |n, a| n.saturating_mul(a.values.len()))
}

/// Every combination, first axis outermost.
pub fn expand(axes: &[Axis<'_>]) -> Vec<IndexMap<String, Value>> {
    let mut combos: Vec<IndexMap<String, Value>> = vec![IndexMap::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for combo in &combos {
            for (v, _) in &axis.values {
                let mut c = combo.clone();
                c.insert(axis.key.to_string(), v.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

/// `base[k1=v1,k2=v2]`; strings appear bare, other values as JSON.
pub fn instance_id(base: &str, combo: &IndexMap<String, Value>) -> String {
    let mut id = String::with_capacity(base.len() + 16 * combo.len());
    id.push_str(base);
    id.push('[');
    for (i, (k, v)) in combo.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        id.push_str(k);
        id.push('=');
        match v {
            Value::String(s) => id.push_str(s),
            other => id.push_str(&other.to_string()),
        }
    }
    id.push(']');
    id
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn axis<'a>(key: &'a str, values: &[Value]) -> Axis<'a> {
        Axis {
            key,
            values: values.iter().map(|v| (v.clone(), 0..0)).collect(),
        }
    }

    #[test]
    fn cartesian_product_in_key_order() {
        let axes = [
            axis("os", &[json!("linux"), json!("mac")]),
            axis("arch", &[json!("x86"), json!("arm")]),
        ];
        assert_eq!(count(&axes), 4);
        let ids: Vec<String> = expand(&axes)
            .iter()
            .map(|c| instance_id("test", c))
            .collect();
        assert_eq!(
            ids,
            [
                "test[os=linux,arch=x86]",
                "test[os=linux,arch=arm]",
                "test[os=mac,arch=x86]",
                "test[os=mac,arch=arm]",
            ]
        );
    }

    #[test]
    fn non_string_values_render_as_json() {
        let axes = [axis("n", &[json!(1), json!(2.5), json!(true)])];
        let ids: Vec<String> = expand(&axes).iter().map(|c| instance_id("t", c)).collect();
        assert_eq!(ids, ["t[n=1]", "t[n=2.5]", "t[n=true]"]);
        assert_eq!(expand(&axes)[1]["n"], json!(2.5));
    }

    #[test]
    fn count_saturates() {
        let big: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
        let axes = [
            axis("a", &big),
            axis("b", &big),
            axis("c", &big),
            axis("d", &big),
        ];
        assert!(count(&axes) > MAX_INSTANCES);
    }
}
