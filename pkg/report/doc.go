// Package report turns a run journal (package journal) into the two
// documents a run directory holds next to journal.jsonl:
//
//   - report.md, in the shape of the Zeebe chaos-day posts: title, a TL;DR
//     verdict, Setup, then per experiment Expected / Actual / Results with
//     the timeline, the faults and their packet counters, the load and the
//     detector hits with their evidence lines;
//   - report.html, self-contained (inline CSS, inline SVG drawn here, no
//     scripts, fonts or images from anywhere): the same text plus plots of
//     throughput, errors and latency over time with the fault windows shaded
//     and detector hits marked.
//
// Build assembles the model both are rendered from, so tests and other
// front ends (the live view, `nfslab run` summaries) can use it directly.
package report
