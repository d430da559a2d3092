//! The monitoring factor codes Weir sends for its quantities, with their units.
//!
//! Only flow has a code in HJ 212-2017's own table; see each constant for where its code
//! comes from. A county's platform may expect other codes, so the gateway takes the codes from
//! each terminal's configuration and uses these as defaults.

/// Where a factor code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A row of HJ 212-2017 appendix B (`table` names it).
    Standard {
        /// The table, for example `"B.1"`.
        table: &'static str,
    },
    /// The water pollutant code list HJ 525-2009, as public HJ 212 implementations use it;
    /// not a row of HJ 212-2017's own tables.
    Hj525,
    /// Weir's choice, where the standard has no code for the quantity.
    Weir,
}

/// A monitoring factor as Weir sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FactorCode {
    /// The code before `-` (`w00000`).
    pub code: &'static str,
    /// The Chinese name in the source table.
    pub name_zh: &'static str,
    /// Unit of `-Rtd`, `-Min`, `-Avg`, `-Max`.
    pub unit: &'static str,
    /// Unit of `-Cou`, for a factor with a cumulative amount.
    pub cou_unit: Option<&'static str>,
    /// The source's data type (`N5.2`: up to 5 integer digits and 2 decimals).
    pub data_type: &'static str,
    /// Decimals Weir writes, from the data type.
    pub decimals: u8,
    /// Where the code comes from.
    pub source: Source,
}

/// Effluent flow: `w00000` 污水 (wastewater), HJ 212-2017 table B.1 (old code `B01`). `-Rtd`,
/// `-Min`, `-Avg`, `-Max` in L/s (Weir's m³/h divided by 3.6); `-Cou` in m³, the volume
/// discharged in the period (from the totaliser's increase where the terminal has one).
pub const FLOW: FactorCode = FactorCode {
    code: "w00000",
    name_zh: "污水",
    unit: "L/s",
    cou_unit: Some("m3"),
    data_type: "N5.2",
    decimals: 2,
    source: Source::Standard { table: "B.1" },
};

/// Effluent turbidity: `w01003` 浊度 (浑浊度), NTU. Not in HJ 212-2017 table B.1 (which
/// quotes only part of HJ 525-2009); `w01003` is the code that public surface-water and
/// wastewater implementations use for turbidity. The data type `N4.1` is Weir's (the probes
/// read 0-4000 NTU to a tenth).
pub const TURBIDITY: FactorCode = FactorCode {
    code: "w01003",
    name_zh: "浊度",
    unit: "NTU",
    cou_unit: None,
    data_type: "N4.1",
    decimals: 1,
    source: Source::Hj525,
};

/// Sludge level: `e71001`, Weir's choice. The standard has no code for the sludge blanket in
/// a settling tank; the nearest rows are the "sludge storage tank level" (储泥池液位, m,
/// `N2.3`) of table B.5, one per treatment process. Weir uses that row of process 7,
/// biological contact oxidation (生物接触氧化法, the usual process of village terminals),
/// device 01: `e710` + `01`. It sends metres of sludge above the tank bottom (Weir's share of
/// the working depth times that depth), the row's unit.
pub const SLUDGE_LEVEL: FactorCode = FactorCode {
    code: "e71001",
    name_zh: "储泥池液位",
    unit: "m",
    cou_unit: None,
    data_type: "N2.3",
    decimals: 3,
    source: Source::Weir,
};

/// Weir's three factors: flow, turbidity, sludge level.
pub const WEIR_FACTORS: [FactorCode; 3] = [FLOW, TURBIDITY, SLUDGE_LEVEL];
