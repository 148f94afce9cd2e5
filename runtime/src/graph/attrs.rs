//! [`Attrs`]: a node's attributes as a kernel reads them, remembering which were read, so that
//! an attribute no kernel code looked at is refused rather than silently ignored.

use std::cell::Cell;
use std::ops::Deref;

use super::{Node, NodeError};
use crate::onnx::pb;

/// Reading a node's attributes by name, written once for [`Node`] (reads as they are) and
/// [`Attrs`] (records what was read).
pub trait ReadAttrs {
    /// The attribute of that name, if the node has it.
    fn attr(&self, name: &str) -> Option<&pb::AttributeProto>;

    /// Whether the attribute is present.
    fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// An integer attribute, or `default` when absent.
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    /// A float attribute, or `default` when absent.
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }

    /// An integer-list attribute (`None` when absent).
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }

    /// A float-list attribute (empty when absent).
    fn floats(&self, name: &str) -> Vec<f32> {
        self.attr(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    /// A string attribute, or `default` when absent.
    fn string(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// A string-list attribute (empty when absent).
    fn strings(&self, name: &str) -> Vec<String> {
        self.attr(name)
            .map_or_else(Vec::new, |a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }
}

impl ReadAttrs for Attrs<'_> {
    /// Reads and records the read.
    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        let i = self.node.attributes.iter().position(|a| a.name == name)?;
        self.read[i].set(true);
        Some(&self.node.attributes[i])
    }
}

/// A view of a [`Node`] whose attribute getters record what they read. A kernel parses its
/// parameters through it; [`Attrs::refuse_unread`] then names the first attribute the node
/// carries that the parsing never read. Derefs to the node for its name, op and inputs.
pub struct Attrs<'n> {
    node: &'n Node,
    read: Vec<Cell<bool>>,
}

impl<'n> Attrs<'n> {
    /// A view of `node` with nothing read yet.
    pub fn new(node: &'n Node) -> Attrs<'n> {
        Attrs { node, read: vec![Cell::new(false); node.attributes.len()] }
    }

    /// The node itself.
    pub fn node(&self) -> &'n Node {
        self.node
    }

    /// [`NodeError::Attribute`] for the first attribute of the node nothing has read.
    pub fn refuse_unread(&self) -> Result<(), NodeError> {
        match self.read.iter().position(|r| !r.get()) {
            Some(i) => Err(NodeError::Attribute(self.node.attributes[i].name.clone())),
            None => Ok(()),
        }
    }
}

impl Deref for Attrs<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::pb;

    #[test]
    fn unread_attributes_are_named() {
        let attr = |name: &str| pb::AttributeProto { name: name.into(), i: 2, ..Default::default() };
        let node = Node {
            name: "g".into(),
            op: "Gather".into(),
            inputs: vec![],
            outputs: vec![],
            output_slots: vec![],
            attributes: vec![attr("axis"), attr("unknown")],
        };
        let a = Attrs::new(&node);
        assert_eq!(a.int("axis", 0), 2);
        assert_eq!(a.int("absent", 7), 7);
        assert_eq!(a.refuse_unread(), Err(NodeError::Attribute("unknown".into())));
        assert_eq!(a.refuse_unread().unwrap_err().to_string(), "attribute `unknown` is not supported");
        assert!(a.has("unknown"));
        assert_eq!(a.refuse_unread(), Ok(()));
        assert_eq!(a.op, "Gather", "derefs to the node");
    }
}
