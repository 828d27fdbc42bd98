import { LabIcon, listIcon } from '@jupyterlab/ui-components';

import usageSvg from '../style/icons/usage.svg';
import workbenchSvg from '../style/icons/workbench.svg';

/** The sidebar tab and settings icon. */
export const workbenchIcon = new LabIcon({ name: 'workbench:icon', svgstr: workbenchSvg });

/** A workload's usage tab and the row button that opens it. */
export const usageIcon = new LabIcon({ name: 'workbench:usage', svgstr: usageSvg });

export const logsIcon = listIcon;
