//! synscope: why did this `connect()` end the way it did?
//!
//! The library has two layers. The pure core — [`decode`], [`flow`], [`event`], [`correlate`],
//! [`linux`] and [`timeline`] — reads no clock, starts no thread and does no I/O: everything it sees
//! carries a timestamp, so it is tested from bytes and literal times. The shells — [`capture`],
//! [`replay`], [`render`], [`cli`] and [`app`] — do the I/O around it.

pub mod capfile;
pub mod correlate;
pub mod decode;
pub mod event;
pub mod flow;
pub mod lab;
pub mod linux;
pub mod timeline;

pub mod app;
pub mod capture;
pub mod cli;
pub mod connect;
pub mod interrupt;
pub mod path;
pub mod privilege;
pub mod probe;
pub mod render;
pub mod replay;
pub mod synth;
pub mod sys;
pub mod trace;
