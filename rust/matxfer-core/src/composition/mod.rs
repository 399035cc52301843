//! Composition descriptors.
