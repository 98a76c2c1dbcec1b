//! synscope's integration tests, one binary: replay of the lab recordings against what connect()
//! returned and against golden outputs, the command line, the public corpus against its independent
//! oracle, and the purity of the core.

mod badfiles;
mod cli;
mod corpus;
mod fixtures;
mod help;
mod live;
mod props;
mod purity;
mod rotated;
mod stdin;
mod synth;
mod util;
