//! Table tests, cases after upstream's `replica_calculator_test.go` and `horizontal_test.go`.

use super::*;

fn pod(name: &str, request: i64, usage: Option<i64>, unready: bool) -> PodSample {
    PodSample {
        name: name.into(),
        unready,
        ignored: false,
        request: Some(request),
        usage,
    }
}

/// `levels[i]` millicores, each pod requesting 1000m; `ready[i]`; `None` is a missing metric.
fn pods(levels: &[Option<i64>], ready: &[bool]) -> Vec<PodSample> {
    levels
        .iter()
        .enumerate()
        .map(|(i, u)| {
            pod(
                &format!("p{i}"),
                1000,
                *u,
                !ready.get(i).copied().unwrap_or(true),
            )
        })
        .collect()
}

#[test]
fn cpu_utilization_table() {
    struct Case {
        name: &'static str,
        current: i32,
        levels: Vec<Option<i64>>,
        ready: Vec<bool>,
        target: i32,
        want: i32,
        utilization: i32,
    }
    let cases = [
        Case {
            name: "scale up",
            current: 3,
            levels: vec![Some(300), Some(500), Some(700)],
            ready: vec![],
            target: 30,
            want: 5,
            utilization: 50,
        },
        Case {
            name: "scale up, unready pods scale less",
            current: 3,
            levels: vec![Some(300), Some(500), Some(700)],
            ready: vec![false, true, true],
            target: 30,
            want: 4,
            utilization: 60,
        },
        Case {
            name: "scale up, unready pods reverse the direction: no change",
            current: 3,
            levels: vec![Some(400), Some(500), Some(700)],
            ready: vec![true, false, false],
            target: 30,
            want: 3,
            utilization: 40,
        },
        Case {
            name: "scale down",
            current: 5,
            levels: vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            ready: vec![],
            target: 50,
            want: 3,
            utilization: 28,
        },
        Case {
            name: "scale down ignores unready pods",
            current: 5,
            levels: vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            ready: vec![true, true, true, false, false],
            target: 50,
            want: 2,
            utilization: 30,
        },
        Case {
            name: "within tolerance",
            current: 3,
            levels: vec![Some(1010), Some(1030), Some(1020)],
            ready: vec![],
            target: 100,
            want: 3,
            utilization: 102,
        },
        Case {
            name: "missing metrics count as 0 when scaling up",
            current: 4,
            levels: vec![Some(800), Some(800), Some(800), None],
            ready: vec![],
            target: 50,
            want: 5,
            utilization: 80,
        },
        Case {
            name: "missing metrics count as their request when scaling down",
            current: 4,
            levels: vec![Some(100), Some(100), Some(100), None],
            ready: vec![],
            target: 50,
            want: 3,
            utilization: 10,
        },
        Case {
            name: "missing metrics, no change at the target",
            current: 2,
            levels: vec![Some(1000), None],
            ready: vec![],
            target: 100,
            want: 2,
            utilization: 100,
        },
        Case {
            name: "missing metrics reverse the direction: no change",
            current: 2,
            levels: vec![Some(600), None],
            ready: vec![],
            target: 50,
            want: 2,
            utilization: 60,
        },
    ];
    for case in cases {
        let got = propose(
            case.current,
            &pods(&case.levels, &case.ready),
            Target::Utilization(case.target),
            "cpu",
            TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got.replicas, case.want, "{}", case.name);
        assert_eq!(got.utilization, Some(case.utilization), "{}", case.name);
    }
}

/// The rollout rule (module docs): surge pods and not-yet-ready pods do not inflate the
/// replica count.
#[test]
fn rollout_rule_table() {
    struct Case {
        name: &'static str,
        current: i32,
        levels: Vec<Option<i64>>,
        ready: Vec<bool>,
        want: i32,
        /// What upstream's calculation proposes, for the record.
        upstream: i32,
    }
    let cases = [
        Case {
            name: "full surge below target: 6 pods at 70 % for 3 replicas",
            current: 3,
            levels: vec![Some(700); 6],
            ready: vec![],
            want: 3,
            upstream: 5,
        },
        Case {
            name: "25 % surge below target: 5 pods at 85 % for 4 replicas",
            current: 4,
            levels: vec![Some(850); 5],
            ready: vec![],
            want: 4,
            upstream: 5,
        },
        Case {
            name: "surge above target: the surge pod does not multiply",
            current: 4,
            levels: vec![Some(1500); 5],
            ready: vec![],
            want: 6,
            upstream: 8,
        },
        Case {
            name: "surge well below target still scales down by what runs",
            current: 4,
            levels: vec![Some(300); 5],
            ready: vec![],
            want: 2,
            upstream: 2,
        },
        Case {
            name: "surge with a pod not yet ready and no metrics yet",
            current: 3,
            levels: vec![Some(1500), Some(1500), Some(1500), None],
            ready: vec![true, true, true, false],
            want: 5,
            upstream: 5,
        },
        Case {
            name: "new pods not ready (starting up hot) during a surge add nothing",
            current: 3,
            // The demand is the ready pods' 3 × 2000m; the hot new pods count at 0.
            levels: vec![Some(2000), Some(2000), Some(2000), Some(3000), Some(3000)],
            ready: vec![true, true, true, false, false],
            want: 6,
            upstream: 6,
        },
        Case {
            name: "no surge: as upstream",
            current: 3,
            levels: vec![Some(1500); 3],
            ready: vec![],
            want: 5,
            upstream: 5,
        },
    ];
    for case in cases {
        let got = propose(
            case.current,
            &pods(&case.levels, &case.ready),
            Target::Utilization(100),
            "cpu",
            TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            got.replicas, case.want,
            "{} (upstream: {})",
            case.name, case.upstream
        );
    }
}

#[test]
fn average_value_and_memory() {
    let samples = vec![
        pod("a", 0, Some(10_000), false),
        pod("b", 0, Some(20_000), false),
        pod("c", 0, Some(30_000), true),
    ];
    // Memory has no unready rule: every pod counts.
    let got = propose(
        3,
        &samples,
        Target::AverageValue(10_000),
        "memory",
        TOLERANCE,
    )
    .unwrap();
    assert_eq!(
        (got.replicas, got.average, got.utilization),
        (6, 20_000, None)
    );
    // For CPU the unready pod's metric is dropped: (10+20)/2 = 15 → 1.5; with it at 0, 10 → 1.0
    // within tolerance: no change.
    let got = propose(3, &samples, Target::AverageValue(10_000), "cpu", TOLERANCE).unwrap();
    assert_eq!(got.replicas, 3);
}

#[test]
fn ignored_pods_errors_and_missing_requests() {
    let mut samples = pods(&[Some(500), Some(500)], &[]);
    samples.push(PodSample {
        ignored: true,
        ..pod("gone", 1000, Some(5000), false)
    });
    let got = propose(2, &samples, Target::Utilization(50), "cpu", TOLERANCE).unwrap();
    assert_eq!(got.replicas, 2);

    let none = pods(&[None, None], &[]);
    assert_eq!(
        propose(2, &none, Target::Utilization(50), "cpu", TOLERANCE),
        Err(CalcError::NoMetrics)
    );
    let no_request = vec![PodSample {
        request: None,
        ..pod("x", 0, Some(5), false)
    }];
    assert!(matches!(
        propose(1, &no_request, Target::Utilization(50), "cpu", TOLERANCE),
        Err(CalcError::MissingRequest { .. })
    ));
    assert_eq!(
        propose(
            1,
            &pods(&[Some(1)], &[]),
            Target::Utilization(0),
            "cpu",
            TOLERANCE
        ),
        Err(CalcError::InvalidTarget)
    );
}

fn bounds(min: i32, max: i32) -> Bounds {
    Bounds {
        min,
        max,
        up: Rules::default_up(),
        down: Rules::default_down(300),
    }
}

#[test]
fn rate_policies_table() {
    let percent = |value, period_seconds| Policy::Percent {
        value,
        period_seconds,
    };
    let pods_policy = |value, period_seconds| Policy::Pods {
        value,
        period_seconds,
    };
    struct Case {
        name: &'static str,
        current: i32,
        desired: i32,
        bounds: Bounds,
        history: History,
        want: i32,
        reason: &'static str,
    }
    let mut min_up = bounds(1, 100);
    min_up.up.select = SelectPolicy::Min;
    let mut disabled_down = bounds(1, 100);
    disabled_down.down.select = SelectPolicy::Disabled;
    let mut half_down = bounds(1, 100);
    half_down.down.policies = vec![percent(50, 60)];
    let mut two_pods_down = bounds(1, 100);
    two_pods_down.down.policies = vec![pods_policy(2, 60)];
    let cases = [
        Case {
            name: "default up: 4 pods beats 100 % from 1",
            current: 1,
            desired: 10,
            bounds: bounds(1, 100),
            history: History::default(),
            want: 5,
            reason: "ScaleUpLimit",
        },
        Case {
            name: "default up: 100 % beats 4 pods from 10",
            current: 10,
            desired: 50,
            bounds: bounds(1, 100),
            history: History::default(),
            want: 20,
            reason: "ScaleUpLimit",
        },
        Case {
            name: "scale-ups earlier in the period count",
            current: 5,
            desired: 10,
            bounds: bounds(1, 100),
            history: History {
                scale_ups: vec![ScaleEvent { at: 95, change: 4 }],
                ..History::default()
            },
            want: 5,
            reason: "ScaleUpLimit",
        },
        Case {
            name: "select Min up",
            current: 10,
            desired: 50,
            bounds: min_up,
            history: History::default(),
            want: 14,
            reason: "ScaleUpLimit",
        },
        Case {
            name: "max replicas",
            current: 8,
            desired: 20,
            bounds: bounds(1, 10),
            history: History::default(),
            want: 10,
            reason: "TooManyReplicas",
        },
        Case {
            name: "default down: all at once, to min",
            current: 10,
            desired: 1,
            bounds: bounds(1, 100),
            history: History::default(),
            want: 1,
            reason: "DesiredWithinRange",
        },
        Case {
            name: "min replicas",
            current: 10,
            desired: 0,
            bounds: bounds(2, 100),
            history: History::default(),
            want: 2,
            reason: "TooFewReplicas",
        },
        Case {
            name: "50 % per minute down",
            current: 10,
            desired: 2,
            bounds: half_down.clone(),
            history: History::default(),
            want: 5,
            reason: "ScaleDownLimit",
        },
        Case {
            name: "50 % per minute counts from the period's start",
            current: 5,
            desired: 2,
            bounds: half_down,
            history: History {
                scale_downs: vec![ScaleEvent { at: 70, change: 5 }],
                ..History::default()
            },
            want: 5,
            reason: "ScaleDownLimit",
        },
        Case {
            name: "2 pods per minute down",
            current: 10,
            desired: 2,
            bounds: two_pods_down,
            history: History::default(),
            want: 8,
            reason: "ScaleDownLimit",
        },
        Case {
            name: "scale down disabled",
            current: 10,
            desired: 2,
            bounds: disabled_down,
            history: History::default(),
            want: 10,
            reason: "ScaleDownLimit",
        },
        Case {
            name: "no change",
            current: 4,
            desired: 4,
            bounds: bounds(1, 10),
            history: History::default(),
            want: 4,
            reason: "DesiredWithinRange",
        },
    ];
    for case in cases {
        let (got, limit) = limit_rate(case.current, case.desired, &case.history, &case.bounds, 100);
        assert_eq!(got, case.want, "{}", case.name);
        assert_eq!(limit.reason, case.reason, "{}", case.name);
        assert_eq!(
            limit.limited,
            case.reason != "DesiredWithinRange",
            "{}",
            case.name
        );
    }
}

#[test]
fn downscale_stabilization_keeps_the_highest_recent_recommendation() {
    let b = bounds(1, 100);
    let mut history = History::default();
    assert_eq!(stabilize(&mut history, 10, 10, 0, &b), 10);
    assert_eq!(stabilize(&mut history, 10, 8, 100, &b), 10);
    assert_eq!(stabilize(&mut history, 10, 3, 200, &b), 10);
    // At 301 the 10 of t=0 left the window; 8 of t=100 is still in it.
    assert_eq!(stabilize(&mut history, 10, 3, 301, &b), 8);
    assert_eq!(stabilize(&mut history, 8, 3, 401, &b), 3);
    // Scaling up is immediate with the default 0 s window.
    assert_eq!(stabilize(&mut history, 3, 9, 402, &b), 9);
}

#[test]
fn upscale_stabilization_keeps_the_lowest_recent_recommendation() {
    let mut b = bounds(1, 100);
    b.up.stabilization_seconds = 60;
    b.down.stabilization_seconds = 0;
    let mut history = History::default();
    assert_eq!(stabilize(&mut history, 4, 4, 0, &b), 4);
    assert_eq!(stabilize(&mut history, 4, 8, 30, &b), 4);
    assert_eq!(stabilize(&mut history, 4, 8, 61, &b), 8);
}

#[test]
fn normalize_records_and_limits() {
    let b = bounds(1, 10);
    let mut history = History::default();
    let (replicas, limit) = normalize(&mut history, 1, 30, &b, 0);
    assert_eq!((replicas, limit.reason), (5, "ScaleUpLimit"));
    record_scale(&mut history, &b, 1, 5, 0);
    // Within the same 15 s period: 4 pods or 100 % of the period's start (1) → still 5.
    let (replicas, _) = normalize(&mut history, 5, 30, &b, 10);
    assert_eq!(replicas, 5);
    // The next period: max(5 + 4, 5 × 2) = 10, the maximum too.
    let (replicas, limit) = normalize(&mut history, 5, 30, &b, 16);
    assert_eq!((replicas, limit.reason), (10, "TooManyReplicas"));
    record_scale(&mut history, &b, 5, 10, 16);
    assert_eq!(history.scale_ups, vec![ScaleEvent { at: 16, change: 5 }]);
}
