// Formulas beyond the record: unit conversions, stride from the profile, BMR (Mifflin-St Jeor),
// EER (IOM), and the "flat BMR calories" day check. API-REFERENCE.md §C.
import type { FitbitProfile, UnitSystem } from '../sources/fitbit/types.js';

// Exact definitions (§C.1).
export const MILES_TO_METRES = 1609.344;
export const FEET_TO_METRES = 0.3048;
export const INCHES_TO_METRES = 0.0254;
export const INCHES_TO_CM = 2.54;
export const POUNDS_TO_KG = 0.45359237;
export const STONE_TO_KG = 14 * POUNDS_TO_KG; // 6.35029318

/**
 * Drops binary float noise (75.10000000000001 → 75.1, 3.386578 × 1000 → 3386.578) by keeping
 * 12 significant digits: far below any sensor's precision, far above the noise.
 */
/**
 * Pace (seconds per kilometre) and speed (km/h) over active (moving) time (API-REFERENCE §C.1).
 * Fitbit reports speed 0 and no pace for a distance of 0 with active time > 0 (the real sample:
 * a 1 s Run of 0 km); so do we. No distance or no active time: neither.
 */
export function paceAndSpeed(distanceMetres: number | null, activeSeconds: number): { pace: number | null; speed: number | null } {
  if (distanceMetres === null || !(activeSeconds > 0)) return { pace: null, speed: null };
  const km = distanceMetres / 1000;
  return { speed: km / (activeSeconds / 3600), pace: km > 0 ? activeSeconds / km : null };
}

export function cleanFloat(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(12));
}

/** Body weight in kg from the profile: kg (metric), lb (en_US), stone (en_GB); 0 = never entered. */
export function profileWeightKg(profile: FitbitProfile, units: UnitSystem): number | null {
  const w = profile.weight;
  if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0) return null;
  if (units === 'en_US') return cleanFloat(w * POUNDS_TO_KG);
  if (units === 'en_GB') return cleanFloat(w * STONE_TO_KG);
  return cleanFloat(w);
}

/** Height in cm from the profile: inches for en_US, cm otherwise. */
export function profileHeightCm(profile: FitbitProfile, units: UnitSystem): number | null {
  const h = profile.height;
  if (typeof h !== 'number' || !Number.isFinite(h) || h <= 0) return null;
  return cleanFloat(units === 'en_US' ? h * INCHES_TO_CM : h);
}

export type StrideKind = 'walking' | 'running';

/** Stride length in metres from the profile (inches for en_US, cm otherwise); null when unknown. */
export function strideMetres(profile: FitbitProfile, units: UnitSystem, kind: StrideKind): number | null {
  const s = kind === 'running' ? profile.strideLengthRunning : profile.strideLengthWalking;
  if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0) return null;
  return cleanFloat(units === 'en_US' ? s * INCHES_TO_METRES : s / 100);
}

export type Sex = 'male' | 'female';

/** Fitbit's `MALE`/`FEMALE` (any case) → Sex; `NA` and anything else → null. */
export function parseSex(gender: unknown): Sex | null {
  if (typeof gender !== 'string') return null;
  const g = gender.trim().toLowerCase();
  if (g === 'male' || g === 'm') return 'male';
  if (g === 'female' || g === 'f') return 'female';
  return null;
}

export interface BodyFacts {
  weightKg: number;
  heightCm: number;
  ageYears: number;
  sex: Sex;
}

function validFacts(f: BodyFacts): boolean {
  return (
    Number.isFinite(f.weightKg) && f.weightKg > 0 &&
    Number.isFinite(f.heightCm) && f.heightCm > 0 &&
    Number.isFinite(f.ageYears) && f.ageYears >= 0 &&
    (f.sex === 'male' || f.sex === 'female')
  );
}

/**
 * Mifflin-St Jeor resting energy, kcal/day, in the original paper's coefficients (§C.2):
 * 9.99·kg + 6.25·cm − 4.92·age + 166·S − 161 (S = 1 male, 0 female). Null for invalid facts.
 */
export function bmrMifflinStJeor(facts: BodyFacts): number | null {
  if (!validFacts(facts)) return null;
  const s = facts.sex === 'male' ? 1 : 0;
  return 9.99 * facts.weightKg + 6.25 * facts.heightCm - 4.92 * facts.ageYears + 166 * s - 161;
}

/** The body facts a profile gives (units converted), or null when one of them is missing. */
export function bodyFactsFromProfile(profile: FitbitProfile, units: UnitSystem): BodyFacts | null {
  const weightKg = profileWeightKg(profile, units);
  const heightCm = profileHeightCm(profile, units);
  const sex = parseSex(profile.gender);
  const ageYears = profile.age;
  if (weightKg === null || heightCm === null || sex === null) return null;
  if (typeof ageYears !== 'number' || !Number.isFinite(ageYears) || ageYears < 0) return null;
  return { weightKg, heightCm, ageYears, sex };
}

/** BMR (kcal/day) from a Fitbit profile; null when weight, height, sex or age is missing. */
export function bmrFromProfile(profile: FitbitProfile, units: UnitSystem): number | null {
  const facts = bodyFactsFromProfile(profile, units);
  return facts === null ? null : bmrMifflinStJeor(facts);
}

/**
 * IOM (2002/2005) estimated energy requirement, kcal/day, adults ≥ 19 y (§C.3):
 * men 864 − 9.72·age + PA·(14.2·kg + 503·m); women 387 − 7.31·age + PA·(10.9·kg + 660.7·m).
 * PA = 1.0 is "sedentary" (the only coefficient the reference confirms). Null under 19 years,
 * where IOM uses other equations, and for invalid facts.
 */
export function eer(facts: BodyFacts, physicalActivity = 1.0): number | null {
  if (!validFacts(facts) || facts.ageYears < 19) return null;
  if (!Number.isFinite(physicalActivity) || physicalActivity <= 0) return null;
  const m = facts.heightCm / 100;
  if (facts.sex === 'male') return 864 - 9.72 * facts.ageYears + physicalActivity * (14.2 * facts.weightKg + 503 * m);
  return 387 - 7.31 * facts.ageYears + physicalActivity * (10.9 * facts.weightKg + 660.7 * m);
}

export interface CaloriesPoint {
  value: number;
  level?: number | null;
  /** Bucket length in seconds (IntradayRecord.interval); defaults to options.intervalSeconds. */
  interval?: number;
}

export interface FlatBmrOptions {
  /** Bucket length when the points do not carry one (default 60). */
  intervalSeconds?: number;
  /** Allowed spread (max − min) relative to the mean value (default 0.01). */
  relTolerance?: number;
  /** Share of the day the points must cover (default 0.9; a spring-forward day is 0.958). */
  minCoverage?: number;
  /** When given: the per-point value must also be within `bmrTolerance` of BMR × interval / 1 day. */
  bmrKcalPerDay?: number | null;
  /** Relative tolerance of that comparison (default 0.15: Fitbit's own BMR equation is unknown). */
  bmrTolerance?: number;
}

/**
 * Whether a day's intraday calories are a flat BMR fill (the device was not worn: Fitbit writes
 * BMR / 1440 per minute, level 0). Decided on the shape, which does not depend on how Fitbit
 * computes BMR: the points cover (nearly) the whole day, every level is 0 (or absent), every
 * value is positive and all values are equal within a small relative tolerance (Fitbit rounds
 * per-minute kcal). A worn but idle day still varies minute to minute. Our BMR estimate is only
 * an optional, loose cross-check, since Fitbit's equation and the profile weight may differ.
 */
export function isFlatBmrCalories(points: readonly CaloriesPoint[], options: FlatBmrOptions = {}): boolean {
  const n = points.length;
  if (n === 0) return false;
  const defaultInterval = options.intervalSeconds ?? 60;
  const relTolerance = options.relTolerance ?? 0.01;
  const minCoverage = options.minCoverage ?? 0.9;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  let covered = 0;
  let perSecondSum = 0;
  for (const p of points) {
    const v = p.value;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return false;
    if (p.level !== undefined && p.level !== null && p.level !== 0) return false;
    const interval = typeof p.interval === 'number' && p.interval > 0 ? p.interval : defaultInterval;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    covered += interval;
    perSecondSum += v / interval;
  }
  if (covered < minCoverage * 86_400) return false;
  const mean = sum / n;
  if (max - min > relTolerance * mean) return false;
  const bmr = options.bmrKcalPerDay;
  if (typeof bmr === 'number' && Number.isFinite(bmr) && bmr > 0) {
    const perDay = (perSecondSum / n) * 86_400;
    if (Math.abs(perDay - bmr) > (options.bmrTolerance ?? 0.15) * bmr) return false;
  }
  return true;
}
