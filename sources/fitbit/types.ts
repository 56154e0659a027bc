// The Fitbit Web API shapes as the source hands them on, validated once at the source
// boundary (API-REFERENCE.md §A). Fields the API marks optional stay optional here.
import type { IntradayType } from '../../lib/schema.js';

/** The unit system of a response, picked by the Accept-Language request header (§A.5). */
export type UnitSystem = 'metric' | 'en_US' | 'en_GB';

export type IntradayDetail = '1min' | '5min' | '15min';
export const INTRADAY_DETAILS: readonly IntradayDetail[] = ['1min', '5min', '15min'];

export interface FitbitProfile {
  timezone: string;
  offsetFromUTCMillis: number;
  /** cm for metric/en_GB, inches for en_US (follows height). */
  height?: number;
  /** kg metric, lb en_US, stone en_GB; 0 means "never entered". */
  weight?: number;
  strideLengthWalking?: number;
  strideLengthRunning?: number;
  gender?: string;
  age?: number;
  dateOfBirth?: string;
  locale?: string;
}

/** A user as the pipeline knows it: ids, the zone to convert with, and the profile facts. */
export interface FitbitUserContext {
  userId: string;
  humanId: string;
  /** IANA zone: the users-file override, else the profile's. */
  timeZone: string;
  profile: FitbitProfile;
  /** Unit system of the profile response (height and strides). */
  profileUnits: UnitSystem;
}

/** One activity-log record (§A.1). logId is kept as a decimal string: it is unsigned 64-bit. */
export interface RawActivity {
  logId: string;
  activityName: string;
  activityTypeId?: number;
  logType?: string;
  startTime: string;
  originalStartTime?: string;
  duration: number;
  activeDuration?: number;
  originalDuration?: number;
  distance?: number;
  distanceUnit?: string;
  steps?: number;
  calories?: number;
  pace?: number;
  speed?: number;
  elevationGain?: number;
  averageHeartRate?: number;
  heartRateZones?: unknown;
  activeZoneMinutes?: unknown;
  activityLevel?: unknown;
  manualValuesSpecified?: unknown;
  source?: { id?: string; name?: string; type?: string; url?: string };
  lastModified?: string;
  [extra: string]: unknown;
}

/** One point of an intraday dataset (§A.2). level and mets come with calories only. */
export interface IntradayPoint {
  time: string;
  value: number;
  level?: number;
  mets?: number;
}

/** One intraday response for one user, resource and date, with what is needed to read it. */
export interface IntradayDay {
  resource: IntradayType;
  /** The date requested (the user's local date). */
  date: string;
  detail: IntradayDetail;
  datasetInterval: number;
  datasetType: string;
  dataset: readonly IntradayPoint[];
  /** Unit system of this response (distance km|mi, elevation m|ft). */
  units: UnitSystem;
  /** The day's own total (`activities-<resource>[0].value`) in the response's unit, null when absent. */
  dayTotal?: number | null;
}
