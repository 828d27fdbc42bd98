/**
 * The user's settings for this extension (schema/plugin.json), typed.
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

import { KINDS, type Kind, type NotifyMode } from './types';

export interface IPreferences {
  /** "" lets the server choose. */
  defaultBackend: string;
  notify: NotifyMode;
  /** Only runs that lasted at least this many seconds are notified. */
  notifyAfter: number;
  kinds: Kind[];
}

export const DEFAULT_PREFERENCES: IPreferences = {
  defaultBackend: '',
  notify: 'all',
  notifyAfter: 30,
  kinds: [...KINDS]
};

/** Read the composite settings, falling back to defaults for anything odd. */
export function readPreferences(composite: { [key: string]: unknown }): IPreferences {
  const backend = composite['defaultBackend'];
  const notify = composite['notify'];
  const kinds = composite['kinds'];
  const after = composite['notifyAfter'];
  return {
    defaultBackend: typeof backend === 'string' ? backend : DEFAULT_PREFERENCES.defaultBackend,
    notify:
      notify === 'off' || notify === 'mine' || notify === 'all'
        ? notify
        : DEFAULT_PREFERENCES.notify,
    notifyAfter:
      typeof after === 'number' && Number.isFinite(after) && after >= 0
        ? after
        : DEFAULT_PREFERENCES.notifyAfter,
    kinds: Array.isArray(kinds)
      ? KINDS.filter(kind => kinds.includes(kind))
      : [...DEFAULT_PREFERENCES.kinds]
  };
}

/** The current preferences, updated when the user edits the settings. */
export class Preferences {
  get value(): IPreferences {
    return this._value;
  }

  get changed(): ISignal<this, IPreferences> {
    return this._changed;
  }

  /** Follow a loaded settings object (a missing registry keeps the defaults). */
  follow(settings: ISettingRegistry.ISettings): void {
    const load = (): void => {
      this._value = readPreferences(settings.composite as { [key: string]: unknown });
      this._changed.emit(this._value);
    };
    settings.changed.connect(load);
    load();
  }

  private _value: IPreferences = { ...DEFAULT_PREFERENCES, kinds: [...DEFAULT_PREFERENCES.kinds] };
  private _changed = new Signal<this, IPreferences>(this);
}
