//! A list of named checks, printed as a PASS/FAIL table at the end of a run.

/// One check's outcome.
struct Check {
    name: String,
    pass: bool,
    detail: String,
}

/// Collects checks as a run goes; each is also printed when recorded, so a run that is
/// cut short still shows what it got through.
#[derive(Default)]
pub struct Report {
    checks: Vec<Check>,
}

impl Report {
    /// Records and prints one check.
    pub fn record(&mut self, name: impl Into<String>, pass: bool, detail: impl Into<String>) {
        let check = Check {
            name: name.into(),
            pass,
            detail: detail.into(),
        };
        let status = if check.pass { "PASS" } else { "FAIL" };
        if check.detail.is_empty() {
            println!("==> {status} {}", check.name);
        } else {
            println!("==> {status} {}: {}", check.name, check.detail);
        }
        self.checks.push(check);
    }

    /// Records a check from a result: `Ok` passes with its detail, `Err` fails with the
    /// error chain as detail. Returns whether it passed.
    pub fn record_result(&mut self, name: &str, result: anyhow::Result<String>) -> bool {
        match result {
            Ok(detail) => {
                self.record(name, true, detail);
                true
            }
            Err(e) => {
                self.record(name, false, format!("{e:#}"));
                false
            }
        }
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.pass).count()
    }

    /// Prints the summary table and a closing `N passed, N failed` line.
    pub fn print_summary(&self, title: &str) {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(70);
        println!();
        println!("{title} summary");
        println!("{}", "-".repeat(width + 8));
        for c in &self.checks {
            let status = if c.pass { "PASS" } else { "FAIL" };
            // Details can be long (error chains); keep the table to one line per check.
            let detail: String = c
                .detail
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            println!("{status}  {:<width$}  {detail}", c.name);
        }
        println!("{}", "-".repeat(width + 8));
        let failed = self.failed();
        println!(
            "{title}: {} passed, {failed} failed",
            self.checks.len() - failed
        );
    }
}
