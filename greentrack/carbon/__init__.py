"""Carbon accounting that knows where and when.

Modules (import the one you need; nothing heavy is imported here)::

    regions     what users type -> canonical zone; resolve_region (arg > env > config > default)
    base        IntensitySource ABC, IntensityPoint, FallbackSource
    registry    SOURCES (names, aliases, live or not; one line per source), get_source()
    static      codecarbon's shipped annual averages (offline default); static_annual()
    csvsource   load_csv(): Electricity Maps exports, EIA-930, custom layouts; CsvSource
    http        what live providers share: HTTP client (timeouts, retries), cache, LiveSource
    electricitymaps, watttime, uk
                one module per live provider: Electricity Maps, WattTime, UK Carbon Intensity
    series      IntensitySeries (exact step integral), Provenance
    regular     gap / duplicate / step rules shared by CSV and providers
    accounting  co2e_g(), account_samples(), static_co2e_g(), predict_final()
    whatif      whatif() on arrays, whatif_run() on a stored run
    lookup      lookup_intensity(): the `greentrack intensity` command's one call
"""
